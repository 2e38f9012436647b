/**
 * Upstream concurrency is a setting in Redis (BullMQ's global concurrency). A Redis that loses its
 * data (restarted without persistence, wiped) loses it too; it is written again periodically, so
 * the limit across all workers holds afterwards. Runs against a private redis-server: it FLUSHALLs.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply, customersCalled } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';

let redis: PrivateRedis | undefined;

afterEach(async () => {
  await cleanupProxies();
  await redis?.stop();
  redis = undefined;
});

describe('a wiped Redis', () => {
  it('keeps the upstream concurrency across two workers after FLUSHALL', async () => {
    redis = await startPrivateRedis();
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call), delayMs: 400 }));
    const config = testConfig(legacy.url, {
      redis: { url: redis.url(), keyPrefix: `test-wipe-${randomUUID().slice(0, 8)}` },
      upstreams: { legacy: { url: legacy.url, timeoutMs: 5000, concurrency: 2, retryDelayMs: 200 } },
      budgetMs: 200,
      worker: { lockDurationMs: 2000, stalledIntervalMs: 1000, concurrencyCheckIntervalMs: 200 },
    });
    const server = await startTestProxy(config, 'serve');
    await startTestProxy(config, 'worker');
    await startTestProxy(config, 'worker');

    const admin = redis.client();
    try {
      expect(await admin.flushall()).toBe('OK');
      const wipedAt = Date.now();
      const meta = `${config.redis.keyPrefix}:{refresh-legacy}:refresh:meta`;
      await eventually(async () => (await admin.hget(meta, 'concurrency')) === '2', 5000, 'the concurrency to be set again');
      console.info(`global concurrency set again ${Date.now() - wipedAt} ms after FLUSHALL (check every 200 ms)`);
      // Twelve new customers at once: each worker alone would run two calls, four together.
      await Promise.all(Array.from({ length: 12 }, (_, i) => postCards(server, cardsBody(['alpha'], `c_storm_${i}`))));
      // Every customer called, rather than exactly twelve calls: a refresh retried on a loaded
      // machine is not what this test is about (the bound is).
      await eventually(() => customersCalled(legacy) === 12 && legacy.inFlight === 0, 10_000, 'every refresh to be done');
      expect(legacy.maxInFlight).toBe(2);
    } finally {
      admin.disconnect();
    }
  });
});
