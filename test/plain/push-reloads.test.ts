/**
 * PushReloads with real Redis, the real GraphQL client and a fake Plain API: the second look that
 * catches a placeholder marker recorded just after its card landed.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { systemClock } from '../../src/core/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { keyLayout } from '../../src/redis/keys.js';
import { writeServedMarkers } from '../../src/redis/served-markers.js';
import { CardCommands } from '../../src/redis/card-commands.js';
import { createPushReloads, SECOND_LOOK_MS, type PushReloads } from '../../src/plain/push-reloads.js';
import { startFakePlainApi, FAKE_PLAIN_API_KEY } from '../helpers/fake-plain-api.js';
import { cleanupProxies, deleteByPrefix, LogSink, redisUrl } from '../helpers/harness.js';

let redis: Redis | undefined;
let pushes: PushReloads | undefined;
let prefix = '';
afterEach(async () => {
  await pushes?.close();
  if (redis) {
    await deleteByPrefix(redis, prefix);
    redis.disconnect();
  }
  await cleanupProxies();
});

it('finds a placeholder marker recorded just after the card landed, and pushes it once', async () => {
  const plain = await startFakePlainApi({ configs: [{ id: 'cc_alpha', key: 'alpha' }] });
  redis = new Redis(redisUrl());
  prefix = `test-${randomUUID().slice(0, 8)}`;
  const keys = keyLayout(prefix);
  const metrics = new Metrics({ budgetMs: 1000 });
  const api = { url: plain.url, apiKey: FAKE_PLAIN_API_KEY, pushReload: true, maxRequestsPerMinute: 100 };
  pushes = createPushReloads(api, { redis, keys, clock: systemClock, metrics, log: createLogger({ destination: new LogSink() }) });
  const ref = { workspaceId: 'w', customerId: 'c_1', threadId: null, cardKey: 'alpha' };

  const landedAt = Date.now();
  pushes.cardsLanded([ref]); // the first look finds nothing yet
  await new Promise((r) => setTimeout(r, 100));
  expect(plain.calls).toEqual([]);
  // ... the request's marker arrives now, as it does when the card landed between its last read and its write.
  const entry = { hash: keys.served('w', 'c_1', 'th_9'), workspaceId: 'w', customerId: 'c_1', contextThreadId: 'th_9', cardKey: 'alpha' };
  await writeServedMarkers(new CardCommands(redis), keys, [{ ...entry, marker: { until: Date.now() + 15_000, kind: 'placeholder' } }], Date.now());

  await plain.waitForReloads(1, 5000);
  expect(Date.now() - landedAt).toBeGreaterThanOrEqual(SECOND_LOOK_MS - 50);
  expect(plain.reloads).toEqual([{ customerId: 'c_1', customerCardConfigId: 'cc_alpha', threadId: 'th_9' }]);
  await new Promise((r) => setTimeout(r, 200));
  expect(plain.count('reload')).toBe(1);
  metrics.registry.clear();
});
