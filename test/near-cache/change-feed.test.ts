/**
 * The change feed against the real Redis, with the near cache's monotonic clock under the test's
 * control: when the feed is behind the lag bound, a request that waits for it (whenCaughtUp) is
 * let through only after the feed has applied every change made before it began waiting, so it
 * can be answered from the near cache without reading Redis, and never with a changed card.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServedCardState } from '../../src/core/card-state.js';
import { ChangeFeed } from '../../src/near-cache/change-feed.js';
import { NearCache } from '../../src/near-cache/near-cache.js';
import { keyLayout } from '../../src/redis/keys.js';
import { eventually, redisUrl } from '../helpers/harness.js';
import { monitor } from '../helpers/monitor.js';
import { startPrivateRedis } from '../helpers/private-redis.js';

const STATE = { data: null, failure: null, invalidatedAt: null, customerEmail: null, customerExternalId: null } as unknown as ServedCardState;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function feedWithClock(url = redisUrl()) {
  const keys = keyLayout(`test-${randomUUID().slice(0, 8)}`, 1);
  let offset = 0;
  const near = new NearCache({ maxBytes: 1_000_000, maxLagMs: 75, catchUpWaitMs: 2000, monotonicNow: () => performance.now() + offset });
  const feedRedis = new Redis(url);
  const redis = new Redis(url);
  const feed = new ChangeFeed({ redis: feedRedis, keys, near, log: pino({ level: 'silent' }) });
  cleanups.push(async () => {
    await feed.close();
    const streamKeys = await redis.keys(`${keys.prefix}:*`);
    if (streamKeys.length > 0) await redis.del(...streamKeys);
    redis.disconnect();
  });
  feed.start();
  await eventually(() => near.trusted, 5000, 'the feed to start');
  return { keys, near, redis, jump: (ms: number) => (offset += ms) };
}

describe('a feed behind the lag bound', () => {
  it('lets a waiting request through only after the changes made before it began waiting are applied', async () => {
    const { keys, near, redis, jump } = await feedWithClock();
    const ref = { workspaceId: 'w_test', customerId: 'c_feed', threadId: null, cardKey: 'alpha' };
    const changed = keys.card(ref);
    const untouched = keys.card({ ...ref, cardKey: 'beta' });
    near.put(changed, STATE, Infinity, 10);
    near.put(untouched, STATE, Infinity, 10);
    // The feed's last confirmation now looks a second old (as after a stalled event loop)…
    jump(1000);
    expect(near.trusted).toBe(false);
    expect(near.continuous).toBe(true);
    // …and a card changes meanwhile (an event appended by another process).
    await redis.xadd(keys.eventStream(0), '*', 'type', 'card.invalidated', 'data', JSON.stringify({ ...ref, reason: 'test' }));
    const waitedFrom = performance.now();
    await near.whenCaughtUp();
    expect(near.trusted).toBe(true);
    // Woken at once, not after a long pause: one round trip to the local Redis.
    expect(performance.now() - waitedFrom).toBeLessThan(1000);
    expect(near.get(changed, 0)).toBeUndefined();
    expect(near.get(untouched, 0)).toBeDefined();
    expect(near.stats.caughtUp).toBe(1);
  });

  it('drops the near cache when a replay moved the epoch while it lagged', async () => {
    const { keys, near, redis, jump } = await feedWithClock();
    const key = keys.card({ workspaceId: 'w_test', customerId: 'c_feed', threadId: null, cardKey: 'alpha' });
    near.put(key, STATE, Infinity, 10);
    jump(1000);
    await redis.incr(keys.cacheEpoch);
    await near.whenCaughtUp();
    expect(near.trusted).toBe(true);
    expect(near.size).toBe(0);
  });
});

describe('the pace of the feed', () => {
  it('polls about once a second while no request reads through the near cache, at its busy pace while requests do', async () => {
    const privateRedis = await startPrivateRedis();
    cleanups.push(() => privateRedis.stop());
    const { keys, near } = await feedWithClock(privateRedis.url());
    const watched = await monitor(privateRedis.port);
    cleanups.push(async () => watched.stop());
    const polls = () => watched.lines.filter((l) => l.args[0]?.toLowerCase() === 'xread' && l.args.includes(keys.eventStream(0))).length;
    const watch = async (ms: number, during?: () => void) => {
      const before = polls();
      const timer = during ? setInterval(during, 20) : undefined;
      await new Promise((r) => setTimeout(r, ms));
      clearInterval(timer);
      return polls() - before;
    };
    // Idle: nothing reads, so the feed only keeps its position (1 poll a second).
    const idle = await watch(2500);
    expect(idle).toBeGreaterThanOrEqual(1);
    expect(idle).toBeLessThanOrEqual(4);
    // The first request after the lull finds the confirmation too old, and waits for one poll.
    expect(near.admit()).toBe(false);
    await near.whenCaughtUp();
    expect(near.trusted).toBe(true);
    // Requests keep coming (every 20 ms): a poll every 40 ms plus its round trip, about 25 a second
    // (at least 8 even when a loaded machine delays the timers; far above the idle pace).
    const busy = await watch(1000, () => near.admit());
    expect(busy).toBeGreaterThanOrEqual(8);
    expect(busy).toBeLessThanOrEqual(30);
  });
});
