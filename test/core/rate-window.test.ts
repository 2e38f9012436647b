import { describe, expect, it } from 'vitest';
import { RateWindow, rateLimitResetAt } from '../../src/core/rate-window.js';

describe('RateWindow', () => {
  it('allows `limit` calls in any 60 s window', () => {
    const window = new RateWindow(3);
    expect([0, 10, 20, 30].map((t) => window.tryAcquire(t))).toEqual([true, true, true, false]);
    expect(window.tryAcquire(59_999)).toBe(false);
    expect(window.tryAcquire(60_000)).toBe(true); // the call at 0 left the window
    expect(window.tryAcquire(60_005)).toBe(false);
    expect(window.tryAcquire(60_010)).toBe(true);
  });

  it('allows nothing until a 429 reset, then the window as before', () => {
    const window = new RateWindow(10);
    window.blockUntil(5000);
    window.blockUntil(1000); // an earlier reset does not shorten the wait
    expect(window.tryAcquire(4999)).toBe(false);
    expect(window.blockedUntil).toBe(5000);
    expect(window.tryAcquire(5000)).toBe(true);
  });
});

describe('rateLimitResetAt', () => {
  const now = Date.parse('2026-12-01T12:00:00.000Z');
  it.each<[string | null, number]>([
    ['2026-12-01T12:00:30.000Z', now + 30_000], // Plain's form: an ISO time
    [String(now / 1000 + 12), now + 12_000], // seconds since the epoch
    ['2026-12-01T11:59:00.000Z', now], // already past: no wait
    ['2027-01-01T00:00:00.000Z', now + 3_600_000], // capped at an hour
    [null, now + 60_000],
    ['soon', now + 60_000],
    ['', now + 60_000],
  ])('%j → now + %#', (header, expected) => {
    expect(rateLimitResetAt(now, header)).toBe(expected);
  });
});
