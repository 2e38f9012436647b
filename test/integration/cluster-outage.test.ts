/**
 * SPEC 13 with SPEC 5's Redis-outage behaviour: one master of a Redis Cluster of the test's own
 * (it is killed) dies and comes back without its data, as a master restarted without persistence
 * does. Requests keep their budget throughout, `/readyz` and `cardproxy_redis_up` say what is
 * going on, and everything on the restarted master recovers by itself: its customers' cards are
 * loaded again through the queue, and the queue's global concurrency (lost with it) is set again.
 * And a process started while the whole cluster is down starts all the same, in degraded mode.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { cardsReply, textOf, type FakeUpstream } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, redisUrl, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';
import { keySlot } from '../helpers/key-slot.js';
import { redisClusterToolsInstalled, startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import { keyLayout } from '../../src/redis/keys.js';

const BUDGET_MS = 1000;
let cluster: RedisCluster | undefined;
let client: Cluster | undefined;

afterEach(async () => {
  await cleanupProxies();
  client?.disconnect();
  await cluster?.stop();
  cluster = client = undefined;
});

async function metric(proxy: TestProxy, name: string, role: string): Promise<number | undefined> {
  const values = (await proxy.metrics.registry.getSingleMetric(name)!.get()).values;
  return values.find((v) => v.labels.role === role)?.value;
}

async function readyz(proxy: TestProxy): Promise<number> {
  return (await proxy.app.inject({ method: 'GET', url: '/readyz' })).statusCode;
}

/** Polls /readyz until it answers `status`; returns how long that took (ms). */
async function untilReadyz(proxy: TestProxy, status: number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  await eventually(async () => (await readyz(proxy)) === status, timeoutMs, `/readyz ${status}`);
  return performance.now() - started;
}

const answerTexts = (res: { body: { cards: Array<{ key: string }> } }) => res.body.cards.map((c) => textOf(c));
const calls = (legacy: FakeUpstream, customerId: string) => legacy.calls.filter((c) => c.customerId === customerId).length;

describe.skipIf(!redisClusterToolsInstalled())('Redis Cluster outages', () => {
  it('one master killed and restarted without its data: answers within the budget meanwhile, reports it, and recovers by itself', async () => {
    cluster = await startRedisCluster();
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call), delayMs: 50 }));
    const keyPrefix = `test-cluster-outage-${randomUUID().slice(0, 8)}`;
    const config = testConfig(legacy.url, {
      redis: { url: redisUrl(), clusterNodes: [...cluster.nodes], keyPrefix },
      budgetMs: BUDGET_MS,
      upstreams: { legacy: { url: legacy.url, timeoutMs: 5000, concurrency: 3, retryDelayMs: 200 } },
      worker: { lockDurationMs: 2000, stalledIntervalMs: 1000, concurrencyCheckIntervalMs: 300 },
    });
    client = new Cluster([...cluster.nodes]);
    await new Promise((resolve) => client!.once('ready', resolve));
    const keys = keyLayout(keyPrefix, config.events.shards);
    const masterOf = (key: string) => client!.slots[keySlot(key)]![0]!;
    // The master to kill holds the refresh queue; `lost` is a customer on it, `kept` one elsewhere.
    const queueMaster = masterOf(`${keys.queuePrefix('legacy')}:refresh:meta`);
    const customerOn = (wanted: (master: string) => boolean, after?: string) => {
      for (let i = after === undefined ? 0 : Number(after.slice(2)) + 1; ; i++) if (wanted(masterOf(keys.eventStream(keys.shardOf('w_test', `c_${i}`))))) return `c_${i}`;
    };
    const lost = customerOn((m) => m === queueMaster);
    const kept = customerOn((m) => m !== queueMaster);
    const victim = cluster.nodes.findIndex((url) => url.endsWith(`:${queueMaster.split(':')[1]}`));
    expect(victim).toBeGreaterThanOrEqual(0);

    const proxy = await startTestProxy(config);
    for (const id of [lost, kept]) expect(answerTexts(await postCards(proxy, cardsBody(['alpha', 'beta'], id)))).toEqual([`alpha for ${id}`, `beta for ${id}`]);
    const meta = `${keys.queuePrefix('legacy')}:refresh:meta`;
    expect(await client.hget(meta, 'concurrency')).toBe('3');
    // Ready once every connection is (on a loaded machine some are still connecting here).
    await untilReadyz(proxy, 200, 10_000);

    await cluster.killMaster(victim);
    const down = await untilReadyz(proxy, 503, 5000);
    expect(await metric(proxy, 'cardproxy_redis_up', 'command')).toBe(0);
    // The worker's connection (blocked on the queue's master) and the subscriber (one per master) know they lost it.
    for (const role of ['worker:legacy', 'subscriber']) await eventually(async () => (await metric(proxy, 'cardproxy_redis_up', role)) === 0, 5000, `${role} down`);
    // A warm customer on a living master is still served from its cache; the lost one (and a new
    // one: the queue is gone) by direct calls; all within the budget.
    const warm = await postCards(proxy, cardsBody(['alpha', 'beta'], kept));
    expect(answerTexts(warm)).toEqual([`alpha for ${kept}`, `beta for ${kept}`]);
    expect(warm.ms).toBeLessThan(BUDGET_MS + 200);
    expect(calls(legacy, kept)).toBe(1);
    for (const id of [lost, 'c_new']) {
      const res = await postCards(proxy, cardsBody(['alpha', 'beta'], id));
      expect(res.status).toBe(200);
      expect(res.ms).toBeLessThan(BUDGET_MS + 200);
      expect(answerTexts(res)).toEqual([`alpha for ${id}`, `beta for ${id}`]);
    }
    expect(Number((await proxy.metrics.degradedAnswers.get()).values[0]?.value)).toBeGreaterThanOrEqual(2);

    // Past the node time-out the other masters mark it failed and refuse every command
    // (CLUSTERDOWN, no replica to take over): then every customer is served by direct calls.
    const survivor = new Redis(cluster.nodes[(victim + 1) % 3]!);
    try {
      await eventually(async () => (await survivor.cluster('INFO')).includes('cluster_state:fail'), 10_000, 'the cluster to fail');
    } finally {
      survivor.disconnect();
    }
    const clusterDown = await postCards(proxy, cardsBody(['alpha', 'beta'], kept));
    expect(clusterDown.ms).toBeLessThan(BUDGET_MS + 200);
    expect(answerTexts(clusterDown)).toEqual([`alpha for ${kept}`, `beta for ${kept}`]);
    expect(await readyz(proxy)).toBe(503);

    await cluster.restartMaster(victim);
    const up = await untilReadyz(proxy, 200, 5000);
    expect(await metric(proxy, 'cardproxy_redis_up', 'command')).toBe(1);
    for (const role of ['worker:legacy', 'subscriber']) await eventually(async () => (await metric(proxy, 'cardproxy_redis_up', role)) === 1, 8000, `${role} up`);
    // The restarted master came back empty: the queue's concurrency is set again, and the lost
    // customer's cards are loaded again through the queue (once), then served from the cache.
    await eventually(async () => (await client!.hget(meta, 'concurrency')) === '3', 5000, 'the concurrency to be set again');
    const before = calls(legacy, lost);
    await eventually(async () => answerTexts(await postCards(proxy, cardsBody(['alpha', 'beta'], lost))).join() === `alpha for ${lost},beta for ${lost}` && calls(legacy, lost) > before, 8000, `${lost} loaded again`);
    const loaded = calls(legacy, lost);
    const fromCache = async () => (await proxy.metrics.cardsServed.get()).values.filter((v) => v.labels.source === 'cache').reduce((n, v) => n + v.value, 0);
    const cachedBefore = await fromCache();
    expect(answerTexts(await postCards(proxy, cardsBody(['alpha', 'beta'], lost)))).toEqual([`alpha for ${lost}`, `beta for ${lost}`]);
    expect(await fromCache()).toBe(cachedBefore + 2);
    expect(calls(legacy, lost)).toBe(loaded);
    // A new customer on the restarted master: the request is woken by the outcome notice (the
    // sharded subscriber is back on that master), not by its deadline.
    const fresh = customerOn((m) => m === queueMaster, lost);
    const cold = await postCards(proxy, cardsBody(['alpha', 'beta'], fresh));
    expect(answerTexts(cold)).toEqual([`alpha for ${fresh}`, `beta for ${fresh}`]);
    console.info(`cluster outage: a cold customer on the restarted master answered in ${Math.round(cold.ms)} ms (budget ${BUDGET_MS} ms)`);
    expect(cold.ms).toBeLessThan(BUDGET_MS - 200);
    console.info(`cluster outage: /readyz 503 ${Math.round(down)} ms after the kill, 200 ${Math.round(up)} ms after cluster_state:ok`);
  }, 60_000);

  it('starts while the whole cluster is down, answers in degraded mode, and recovers by itself once it is back', async () => {
    cluster = await startRedisCluster();
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call), delayMs: 50 }));
    const config = testConfig(legacy.url, {
      redis: { url: redisUrl(), clusterNodes: [...cluster.nodes], keyPrefix: `test-cluster-down-${randomUUID().slice(0, 8)}` },
      budgetMs: BUDGET_MS,
    });
    await Promise.all([0, 1, 2].map((i) => cluster!.killMaster(i)));
    const started = performance.now();
    const proxy = await startTestProxy(config);
    expect(performance.now() - started).toBeLessThan(6000);
    expect(await readyz(proxy)).toBe(503);
    const degraded = await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_1'));
    expect(answerTexts(degraded)).toEqual(['alpha for c_1', 'beta for c_1']);
    expect(degraded.ms).toBeLessThan(BUDGET_MS + 200);

    await cluster.restartMasters([0, 1, 2]);
    const up = await untilReadyz(proxy, 200, 5000);
    // Loaded once through the queue, then answered from the cache.
    const before = calls(legacy, 'c_2');
    const cold = await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_2'));
    expect(answerTexts(cold)).toEqual(['alpha for c_2', 'beta for c_2']);
    // Woken by the outcome notice: the subscriptions made while the cluster was down are in place.
    expect(cold.ms).toBeLessThan(BUDGET_MS - 200);
    expect(answerTexts(await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_2')))).toEqual(['alpha for c_2', 'beta for c_2']);
    expect(calls(legacy, 'c_2')).toBe(before + 1);
    expect(Number((await proxy.metrics.degradedAnswers.get()).values[0]?.value)).toBe(1); // only the answer while it was down
    console.info(`cluster down at start: started in ${Math.round(performance.now() - started)} ms in all; /readyz 200 ${Math.round(up)} ms after cluster_state:ok`);
  }, 60_000);
});
