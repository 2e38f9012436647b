/**
 * A served marker that cannot be written (SPEC 5.6) costs one manual reload or push reload, not the
 * answer: the answer stands, and `cardproxy_served_markers_lost_total` counts the markers lost so
 * that an operator sees it. A Redis of the test's own refuses writes (`maxmemory` below what it
 * holds, `noeviction`) while reads still work.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { keyLayout } from '../../src/redis/keys.js';
import { cardsBody, cleanupProxies, eventually, postCards, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';

let privateRedis: PrivateRedis;
beforeAll(async () => {
  privateRedis = await startPrivateRedis(['--maxmemory-policy', 'noeviction']);
});
afterAll(async () => {
  await privateRedis.stop();
});
afterEach(cleanupProxies);

it('counts the served markers it could not write, and still answers with the cached cards', async () => {
  const legacy = await startTestUpstream();
  const keyPrefix = `test-${randomUUID().slice(0, 8)}`;
  const config = testConfig(legacy.url, { redis: { url: privateRedis.url(), keyPrefix }, defaults: { ttlSeconds: 300 } });
  const proxy = await startTestProxy(config, 'start');
  const lost = async () => (await proxy.metrics.registry.getSingleMetric('cardproxy_served_markers_lost_total')!.get()).values[0]?.value ?? 0;
  const inThread = (id: string) => cardsBody(['alpha', 'beta'], 'c_lost', { thread: { id, externalId: null } });
  const keys = keyLayout(keyPrefix);
  const admin = privateRedis.client();
  try {
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_lost')); // cold: loads both cards
    const warm = await postCards(proxy, inThread('t_written'));
    expect(warm.body.cards.map((c: { timeToLiveSeconds: number }) => c.timeToLiveSeconds)).toEqual([240, 240]);
    await eventually(async () => (await admin.hlen(keys.served('w_test', 'c_lost', 't_written'))) === 2, 5000, 'markers written');
    expect(await lost()).toBe(0);

    // Writes refused from here on (OOM), reads still answered.
    await admin.config('SET', 'maxmemory', '1');
    const refused = await postCards(proxy, inThread('t_refused'));
    expect(refused.status).toBe(200);
    expect(refused.body.cards.map((c: { key: string; timeToLiveSeconds: number }) => [c.key, c.timeToLiveSeconds])).toEqual([
      ['alpha', 240],
      ['beta', 240],
    ]);
    await eventually(async () => (await lost()) === 2, 5000, 'two markers counted as lost');
    expect(await admin.exists(keys.served('w_test', 'c_lost', 't_refused'))).toBe(0);

    // Writable again: the next thread's markers land, and nothing more is counted.
    await admin.config('SET', 'maxmemory', '0');
    await postCards(proxy, inThread('t_after'));
    await eventually(async () => (await admin.hlen(keys.served('w_test', 'c_lost', 't_after'))) === 2, 5000, 'markers written again');
    expect(await lost()).toBe(2);
    expect(legacy.calls).toHaveLength(1);
  } finally {
    await admin.config('SET', 'maxmemory', '0');
    admin.disconnect();
  }
});
