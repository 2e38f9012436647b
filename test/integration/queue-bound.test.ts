/**
 * The refresh queue bounded (`refresh.maxQueued`) and jobs that leave it without running: the
 * oldest queued refreshes of the lowest priority are dropped past the bound, and a job removed or
 * obliterated by an operator tells the requests waiting for it at once (SPEC 5 fall-back) and
 * gives its markers back. Real Redis, real BullMQ workers (one upstream slot held busy, so jobs
 * stay queued) and a real HTTP upstream.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { CardRef } from '../../src/core/card-ref.js';
import { parseConfig } from '../../src/config/load.js';
import { keyLayout } from '../../src/redis/keys.js';
import { REFRESH_QUEUE_NAME } from '../../src/refresh/refresh-job.js';
import { admin } from '../helpers/admin-client.js';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, redisUrl, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';
import { parsePromText } from '../helpers/prom-text.js';

const ERROR_TEXT = 'This card could not be loaded right now. Try reloading it in a minute.';
let cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => {});
  await cleanupProxies();
});

/**
 * One upstream slot; customer `busy`'s call is held until `releaseBusy()`, so every other refresh
 * waits in the queue; the others answer at once.
 */
async function setup(opts: { budgetMs: number; maxQueued?: number; adminToken?: string }) {
  let releaseBusy!: () => void;
  const busyHeld = new Promise<void>((resolve) => (releaseBusy = resolve));
  const legacy = await startTestUpstream(async (call) => {
    if (call.customerId === 'busy') await busyHeld;
    return { body: cardsReply(call) };
  });
  const config = testConfig(legacy.url, {
    budgetMs: opts.budgetMs,
    upstreams: { legacy: { url: legacy.url, concurrency: 1, timeoutMs: 30_000 } },
    ...(opts.maxQueued ? { refresh: { maxQueued: opts.maxQueued } } : {}),
    ...(opts.adminToken ? { admin: { token: opts.adminToken } } : {}),
  });
  const proxy = await startTestProxy(config);
  const keys = keyLayout(config.redis.keyPrefix);
  const redis = new Redis(redisUrl());
  const queue = new Queue(REFRESH_QUEUE_NAME, { connection: new Redis(redisUrl(), { maxRetriesPerRequest: null }), prefix: keys.queuePrefix('legacy') });
  cleanups.push(
    async () => releaseBusy(),
    () => queue.close(),
    async () => redis.disconnect(),
  );
  const ref = (customerId: string): CardRef => ({ workspaceId: 'w_test', customerId, threadId: null, cardKey: 'alpha' });
  /** The job holding a customer's marker, once it is on the queue. */
  const queuedJob = (customerId: string): Promise<string> =>
    eventually(async () => {
      const owner = await redis.get(keys.inflight(ref(customerId)));
      return owner !== null && (await redis.exists(queue.toKey(owner))) === 1 ? owner : '';
    }, 5000, `${customerId}'s job on the queue`);
  // The worker is busy with `busy` from here on; its request gets its placeholder meanwhile.
  const busyAnswer = postCards(proxy, cardsBody(['alpha'], 'busy'));
  cleanups.push(() => busyAnswer);
  await legacy.waitForCalls(1);
  return { legacy, proxy, config, keys, redis, queue, ref, queuedJob, releaseBusy };
}

/** One sample of the process's `/metrics` (NaN when absent). */
async function metric(proxy: TestProxy, name: string, labels: Record<string, string>): Promise<number> {
  const res = await proxy.app.inject({ method: 'GET', url: '/metrics' });
  const sample = parsePromText(res.body).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return sample?.value ?? NaN;
}

const dropped = (proxy: TestProxy, reason: string) => metric(proxy, 'cardproxy_refresh_dropped_total', { upstream: 'legacy', reason });

describe('refresh.maxQueued', () => {
  it('drops the oldest queued refreshes past the bound, tells their requests, and a new customer after the storm is answered with data', async () => {
    const { legacy, proxy, queue, ref, queuedJob, releaseBusy } = await setup({ budgetMs: 3000, maxQueued: 5 });
    expect(await dropped(proxy, 'queue_full')).toBe(0);

    // A storm of 12 new customers, one after the other: past 5 queued, the oldest go.
    const storm = Array.from({ length: 12 }, (_, i) => `storm_${i}`);
    const answers: Array<Promise<Awaited<ReturnType<typeof postCards>>>> = [];
    for (const customerId of storm) {
      answers.push(postCards(proxy, cardsBody(['alpha'], customerId)));
      await queuedJob(customerId);
    }
    await eventually(async () => (await dropped(proxy, 'queue_full')) === 7, 5000, '7 refreshes dropped');
    const settled = await Promise.all(answers);
    // The 7 oldest were told at once (a failure notice: the error copy, SPEC 5.5), the 5 newest waited their budget.
    const texts = settled.map((a) => textOf(a.body.cards[0]));
    expect(texts).toEqual([...Array(7).fill(ERROR_TEXT), ...Array(5).fill('Loading…')]);
    for (const a of settled.slice(0, 7)) expect(a.ms).toBeLessThan(2500);
    expect(await queue.getPrioritizedCount()).toBe(5);
    const owners = await proxy.store.inflightOwners(storm.map(ref));
    expect(owners.map((owner) => owner !== null)).toEqual([...Array(7).fill(false), ...Array(5).fill(true)]);

    // Those 5 lost their requests: background now. A new customer's refresh goes first.
    await eventually(async () => (await queue.getCountsPerPriority([1, 2]))[2] === 5, 5000, 'the answered refreshes lowered');
    const fresh = postCards(proxy, cardsBody(['alpha'], 'fresh'));
    await queuedJob('fresh');
    // Its enqueue made 6 waiting: the oldest of the lowest priority (an answered storm refresh) went.
    await eventually(async () => (await dropped(proxy, 'queue_full')) === 8, 5000, 'an eighth refresh dropped');
    expect((await proxy.store.inflightOwners(storm.slice(7).map(ref))).filter((o) => o !== null)).toHaveLength(4);
    expect(await queue.getCountsPerPriority([1, 2])).toEqual({ 1: 1, 2: 4 });
    releaseBusy();
    const answer = await fresh;
    expect(textOf(answer.body.cards[0])).toBe('alpha for fresh');
    expect(legacy.calls.map((c) => c.customerId).slice(0, 2)).toEqual(['busy', 'fresh']);
    expect(await dropped(proxy, 'queue_full')).toBe(8);
    // Dropped in several rounds, written once (a storm drops on every enqueue); the metric counts.
    expect(proxy.logs.find('refresh queue full: dropped the oldest queued refreshes of the lowest priority')).toHaveLength(1);
    // Single-flight still holds for a dropped customer: one new refresh, one call.
    await eventually(() => legacy.calls.length === 6, 10_000, 'the 4 kept refreshes to run');
    const again = await Promise.all([postCards(proxy, cardsBody(['alpha'], 'storm_0')), postCards(proxy, cardsBody(['alpha'], 'storm_0'))]);
    expect(again.map((a) => textOf(a.body.cards[0]))).toEqual(['alpha for storm_0', 'alpha for storm_0']);
    expect(legacy.calls.filter((c) => c.customerId === 'storm_0')).toHaveLength(1);
  });

  it('drops warming before refreshes a request waits for', async () => {
    const { proxy, queue, ref, queuedJob } = await setup({ budgetMs: 3000, maxQueued: 2, adminToken: 'bound-token' });
    for (const id of ['warm_1', 'warm_2']) {
      // alpha and beta: one job of two cards.
      expect((await admin(proxy, 'POST', '/admin/warm', { body: { workspaceId: 'w_test', customers: [{ id }] } })).body).toEqual({ queued: 2 });
      await queuedJob(id);
    }
    const waiting = postCards(proxy, cardsBody(['alpha'], 'waiting_1'));
    await queuedJob('waiting_1');
    await eventually(async () => (await dropped(proxy, 'queue_full')) === 2, 5000, 'one job of two cards dropped');
    // The oldest warming went; the newer warming and the refresh a request waits for stay.
    expect(await proxy.store.inflightOwners(['warm_1', 'warm_2', 'waiting_1'].map(ref)).then((o) => o.map((x) => x !== null))).toEqual([false, true, true]);
    expect(await queue.getCountsPerPriority([1, 3])).toEqual({ 1: 1, 3: 1 });
    expect(textOf((await waiting).body.cards[0])).toBe('Loading…');
  });

  it('takes a reloaded refresh.maxQueued and warming.maxQueued at once', async () => {
    const { proxy, config, queuedJob, ref } = await setup({ budgetMs: 3000, adminToken: 'bound-token' });
    const raw = JSON.parse(JSON.stringify(config));
    const result = await proxy.reload(() => parseConfig({ ...raw, refresh: { maxQueued: 2 }, warming: { ...raw.warming, maxQueued: 1 } }, {}));
    expect(result.config).toBe('reloaded');
    expect(proxy.logs.find('configuration reloaded')[0]!.applied).toEqual(['warming', 'refresh']);
    const warm = (id: string) => admin(proxy, 'POST', '/admin/warm', { body: { workspaceId: 'w_test', customers: [{ id }] } });
    expect((await warm('warm_1')).body).toEqual({ queued: 2 });
    expect((await warm('warm_2')).body).toEqual({ queued: 0 }); // past warming.maxQueued 1
    expect(await metric(proxy, 'cardproxy_warming_dropped_total', { upstream: 'legacy' })).toBe(2);
    await queuedJob('warm_1');
    const waiting = ['r_1', 'r_2'].map((id) => postCards(proxy, cardsBody(['alpha'], id)));
    await queuedJob('r_1');
    await queuedJob('r_2');
    // Three waiting past refresh.maxQueued 2: warm_1's job (two cards) goes.
    await eventually(async () => (await dropped(proxy, 'queue_full')) === 2, 5000, "warm_1's refresh dropped");
    expect((await proxy.store.inflightOwners(['warm_1', 'r_1', 'r_2'].map(ref))).map((o) => o !== null)).toEqual([false, true, true]);
    await Promise.all(waiting);
  });
});

describe('a job removed from the queue', () => {
  it('Queue.remove: the waiting request falls back at once, the marker goes back, the next request refreshes', async () => {
    const { legacy, proxy, redis, queue, ref, queuedJob } = await setup({ budgetMs: 8000 });
    const started = performance.now();
    const victim = postCards(proxy, cardsBody(['alpha'], 'victim'));
    const jobId = await queuedJob('victim');
    const removedAt = performance.now();
    expect(await queue.remove(jobId)).toBe(1);
    const answer = await victim;
    expect(textOf(answer.body.cards[0])).toBe(ERROR_TEXT);
    expect(performance.now() - removedAt).toBeLessThan(2000); // the watch looks every 500 ms; the budget is 8 s
    expect(performance.now() - started).toBeLessThan(4000);
    expect(await redis.get(proxy.store.keys.inflight(ref('victim')))).toBeNull();
    expect(await dropped(proxy, 'removed')).toBe(1);
    expect(proxy.logs.find('refresh job removed from its queue: markers released, waiting requests told')).toHaveLength(1);
    // The next request starts a fresh job instead of joining the removed one.
    void postCards(proxy, cardsBody(['alpha'], 'victim'));
    const next = await queuedJob('victim');
    expect(next).not.toBe(jobId);
    expect(legacy.calls.filter((c) => c.customerId === 'victim')).toHaveLength(0);
  });

  it('obliterate: every waiting request falls back at once and its markers go back', async () => {
    const { proxy, queue, ref, queuedJob } = await setup({ budgetMs: 8000 });
    const victims = ['victim_a', 'victim_b'].map((id) => postCards(proxy, cardsBody(['alpha'], id)));
    await queuedJob('victim_a');
    await queuedJob('victim_b');
    const at = performance.now();
    await queue.pause();
    await queue.obliterate({ force: true });
    const answers = await Promise.all(victims);
    expect(answers.map((a) => textOf(a.body.cards[0]))).toEqual([ERROR_TEXT, ERROR_TEXT]);
    expect(performance.now() - at).toBeLessThan(2000);
    expect(await proxy.store.inflightOwners([ref('victim_a'), ref('victim_b')])).toEqual([null, null]);
    // The active job of `busy`, whose request waits too, went with the queue.
    expect(await dropped(proxy, 'removed')).toBe(3);
  });
});
