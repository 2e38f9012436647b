/**
 * The near cache on its own (pure: a controlled monotonic clock, no Redis): CLOCK eviction, and
 * the catch-up wait that a request takes when the feed is continuous but behind the lag bound.
 */
import { describe, expect, it } from 'vitest';
import type { ServedCardState } from '../../src/core/card-state.js';
import { NearCache, rememberedMarker } from '../../src/near-cache/near-cache.js';

const STATE = { data: null, failure: null, invalidatedAt: null, customerEmail: null, customerExternalId: null } as unknown as ServedCardState;
/** What one entry of `componentBytes` costs in the estimate (ENTRY_OVERHEAD_BYTES + 2 × key length + components). */
const entryBytes = (key: string, componentBytes: number) => 400 + 2 * key.length + componentBytes;

function cache(opts: { maxBytes?: number; maxLagMs?: number; catchUpWaitMs?: number } = {}) {
  let now = 1000;
  const near = new NearCache({ maxBytes: opts.maxBytes ?? 1_000_000, maxLagMs: opts.maxLagMs ?? 75, catchUpWaitMs: opts.catchUpWaitMs, monotonicNow: () => now });
  return { near, advance: (ms: number) => (now += ms), now: () => now };
}

/** Whether `promise` has settled after the pending microtasks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('eviction (CLOCK)', () => {
  it('evicts the oldest entry not used since, giving used ones a second chance, and stays under maxBytes', () => {
    const per = entryBytes('k0', 100);
    const { near } = cache({ maxBytes: 3 * per });
    for (const key of ['k0', 'k1', 'k2']) near.put(key, STATE, Infinity, 100);
    expect(near.size).toBe(3);
    expect(near.get('k0', 0)).toBeDefined(); // used: survives the next eviction
    near.put('k3', STATE, Infinity, 100);
    expect(near.bytes).toBeLessThanOrEqual(3 * per);
    expect(['k0', 'k1', 'k2', 'k3'].map((k) => near.get(k, 0) !== undefined)).toEqual([true, false, true, true]);
    // Everything held was used: one round clears every flag, then the oldest goes, never the card just stored.
    near.put('k4', STATE, Infinity, 100);
    expect(['k0', 'k2', 'k3', 'k4'].map((k) => near.get(k, 0) !== undefined)).toEqual([true, false, true, true]);
    expect(near.bytes).toBeLessThanOrEqual(3 * per);
  });

  it('does not serve an entry past its keep-until, and forgets it', () => {
    const { near } = cache();
    near.put('k', STATE, 5000, 10);
    expect(near.get('k', 4999)).toBeDefined();
    expect(near.get('k', 5000)).toBeUndefined();
    expect(near.size).toBe(0);
    expect(near.bytes).toBe(0);
  });
});

describe('remembered served markers', () => {
  it('keeps one data marker per entry (the last), counted in its bytes, and forgets it only for its own context', () => {
    const { near } = cache();
    near.put('k', STATE, Infinity, 100);
    const held = near.bytes;
    near.rememberServed('k', 'served:-', { until: 5000, kind: 'data' });
    expect(rememberedMarker(near.get('k', 0)!, 'served:-')).toEqual({ until: 5000, kind: 'data' });
    expect(near.bytes).toBe(held + 200);
    // A newer marker replaces it; the size stays that of one.
    near.rememberServed('k', 'served:-', { until: 6000, kind: 'data' });
    near.rememberServed('k', 'served:t_1', { until: 7000, kind: 'data' });
    expect(rememberedMarker(near.get('k', 0)!, 'served:-')).toBeNull();
    expect(rememberedMarker(near.get('k', 0)!, 'served:t_1')).toEqual({ until: 7000, kind: 'data' });
    expect(near.bytes).toBe(held + 200);
    // "No marker" or a placeholder in another context leaves it; in its own, forgets it.
    near.rememberServed('k', 'served:-', null);
    near.rememberServed('k', 'served:t_2', { until: 8000, kind: 'placeholder' });
    expect(rememberedMarker(near.get('k', 0)!, 'served:t_1')).toEqual({ until: 7000, kind: 'data' });
    near.rememberServed('k', 'served:t_1', { until: 9000, kind: 'error' });
    expect(rememberedMarker(near.get('k', 0)!, 'served:t_1')).toBeNull();
    expect(near.bytes).toBe(held);
    // A card not held remembers nothing.
    near.rememberServed('other', 'served:-', { until: 5000, kind: 'data' });
    expect(near.bytes).toBe(held);
  });
});

describe('catching up with a lagging feed', () => {
  it('is trusted only while the last confirmation is within the lag bound', () => {
    const { near, advance, now } = cache({ maxLagMs: 75 });
    expect(near.trusted).toBe(false); // the feed has not started
    near.resume(now());
    expect(near.trusted).toBe(true);
    advance(76);
    expect(near.trusted).toBe(false);
    expect(near.continuous).toBe(true);
  });

  it('ends the wait when the feed confirms a position within the bound, and wakes the feed from its pause at once', async () => {
    const { near, advance, now } = cache({ catchUpWaitMs: 10_000 });
    near.resume(now());
    const pause = near.pause(10_000);
    advance(200);
    expect(near.trusted).toBe(false);
    const waiting = near.whenCaughtUp();
    const second = near.whenCaughtUp();
    expect(second).toBe(waiting); // one wait shared by every request waiting then
    expect(await settled(pause)).toBe(true); // the feed polls at once
    expect(await settled(near.pause(10_000))).toBe(true); // and does not pause while requests wait
    // A reply to a poll sent too long ago does not end the wait…
    near.covered(now() - 100);
    expect(await settled(waiting)).toBe(false);
    // …one sent after the requests began waiting does.
    near.covered(now());
    expect(await settled(waiting)).toBe(true);
    expect(near.trusted).toBe(true);
    expect(near.stats.caughtUp).toBe(2);
    const calm = near.pause(10_000);
    expect(await settled(calm)).toBe(false); // nobody waits: the usual pause
  });

  it('ends the wait when the feed breaks (the requests then read Redis)', async () => {
    const { near, advance, now } = cache({ catchUpWaitMs: 10_000 });
    near.resume(now());
    near.put('k', STATE, Infinity, 10);
    advance(200);
    const waiting = near.whenCaughtUp();
    near.flush('feed_broken');
    expect(await settled(waiting)).toBe(true);
    expect(near.trusted).toBe(false);
    expect(near.continuous).toBe(false);
    expect(near.size).toBe(0);
  });

  it('gives up after catchUpWaitMs, still untrusted, so the request reads Redis', async () => {
    const { near, advance, now } = cache({ catchUpWaitMs: 30 });
    near.resume(now());
    advance(200);
    const started = Date.now();
    await near.whenCaughtUp();
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(near.trusted).toBe(false);
  });
});
