import { describe, expect, it } from 'vitest';
import { plainCopyExpiresAt, type CardAnswer } from '../../src/core/card-resolution.js';

const answer = (ttlSeconds: number): CardAnswer => ({ source: 'cache', ttlSeconds, components: null });
const data = { components: null, ttlSeconds: 60, fetchedAt: 1_000_000, upstream: 'legacy' };

describe('plainCopyExpiresAt', () => {
  it('is the card’s own expiry for a fresh answer, the same for every request', () => {
    expect(plainCopyExpiresAt(1_010_000, answer(50), data)).toBe(1_060_000);
    expect(plainCopyExpiresAt(1_030_500, answer(30), data)).toBe(1_060_000);
  });

  it('is at least a second away, as Plain is never told less than 1 s', () => {
    expect(plainCopyExpiresAt(1_059_800, answer(1), data)).toBe(1_060_800);
  });

  it('is now + the TTL given for any other answer', () => {
    expect(plainCopyExpiresAt(5_000, { source: 'placeholder', ttlSeconds: 15, components: [] })).toBe(20_000);
    expect(plainCopyExpiresAt(5_000, { source: 'stale', ttlSeconds: 4, components: null })).toBe(9_000);
  });
});
