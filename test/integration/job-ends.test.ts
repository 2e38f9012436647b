/**
 * A refresh job's in-flight markers never outlive the job: a job that is gone from its queue
 * (removed by an operator, dropped, expired) is not joined, its cards are claimed by a new job.
 * (Jobs failed by BullMQ after their workers died are covered with real processes in processes.test.ts.)
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, redisUrl, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';
import { claimTtlMs, RefreshScheduler } from '../../src/refresh/refresh-scheduler.js';
import { groupUpstreams } from '../../src/config/upstream-groups.js';

afterEach(async () => {
  await cleanupProxies();
});

/** The legacy upstream's refresh queue of `proxy`, on connections of the test's own (closed by `close`). */
function openRefreshQueue(proxy: TestProxy) {
  const redis = new Redis(redisUrl());
  const queue = new Queue('refresh', { connection: redis.duplicate(), prefix: proxy.store.keys.queuePrefix('legacy') });
  return {
    redis,
    queue,
    async close() {
      await queue.close();
      redis.disconnect();
    },
  };
}

describe('in-flight markers of ended jobs', () => {
  it('a request does not join a job that was removed from the queue: it enqueues a new one, which loads the card', async () => {
    const legacy = await startTestUpstream();
    const config = testConfig(legacy.url);
    const server = await startTestProxy(config, 'serve'); // no worker: the job stays queued
    const body = cardsBody(['alpha', 'beta'], 'c_removed');
    expect(textOf((await postCards(server, body)).body.cards[0])).toBe('Loading…');

    const { redis, queue, close } = openRefreshQueue(server);
    try {
      const [job] = await queue.getJobs(['waiting', 'prioritized']);
      expect(job).toBeDefined();
      await queue.remove(job!.id!);
      const marker = server.store.keys.inflight({ workspaceId: 'w_test', customerId: 'c_removed', threadId: null, cardKey: 'alpha' });
      expect(await redis.get(marker)).toBe(job!.id);
      // Age the marker past the moment a job is surely on its queue (instead of waiting 5 s).
      await redis.pexpire(marker, claimTtlMs(groupUpstreams(config).groups[0]!) - 6000);

      await postCards(server, body);
      const [again] = await queue.getJobs(['waiting', 'prioritized']);
      expect(again?.id).toBeDefined();
      expect(again!.id).not.toBe(job!.id);
      expect(again!.data.cards.map((c: { cardKey: string }) => c.cardKey)).toEqual(['alpha']); // beta's marker was still young
      expect(await redis.get(marker)).toBe(again!.id);

      await startTestProxy(config, 'worker');
      await eventually(async () => textOf((await postCards(server, body)).body.cards[0]) === 'alpha for c_removed', 5000, 'the card to land');
      expect(legacy.calls.filter((c) => c.keys.includes('alpha'))).toHaveLength(1);
    } finally {
      await close();
    }
  });
});

describe('a refresh claimed just after another job landed the card', () => {
  it('makes no second upstream call: the card was loaded since the request looked, although before its look time', async () => {
    const legacy = await startTestUpstream();
    const config = testConfig(legacy.url);
    const server = await startTestProxy(config, 'start');
    const body = cardsBody(['alpha', 'beta'], 'c_race');
    // A job lands the card. Its `fetchedAt` is taken when the upstream answered, before its outcome is recorded.
    await eventually(async () => textOf((await postCards(server, body)).body.cards[0]) === 'alpha for c_race', 5000, 'the card to land');
    expect(legacy.calls).toHaveLength(1);

    // A request that read "nothing cached" just before that outcome was recorded, and claims just
    // after the markers went: its look is later than the card's fetchedAt, so time cannot tell.
    const [group] = groupUpstreams(config).groups;
    const scheduler = new RefreshScheduler({ redis: server.redis, keys: server.store.keys, groups: [group!], maxQueuedWarming: config.warming.maxQueued });
    try {
      const ref = { workspaceId: 'w_test', customerId: 'c_race', threadId: null, cardKey: 'alpha' };
      const context = { workspaceId: 'w_test', customer: { id: 'c_race', email: 'c_race@example.com', externalId: null }, thread: null, tenant: null };
      const claimed = await scheduler.schedule(context, [{ ref, group: group!, seenFetchedAt: null }], { force: false, now: Date.now(), trigger: 'request', urgency: 'waiting' });
      expect(claimed).toEqual([{ ref, jobId: expect.any(String) }]);
      const marker = server.store.keys.inflight(ref);
      await eventually(async () => (await server.redis.get(marker)) === null, 5000, 'the job to end');
      await eventually(() => server.logs.find('refresh job').some((l) => l.outcome === 'skipped'), 2000, 'the job to be logged as skipped');
      expect(legacy.calls).toHaveLength(1);
    } finally {
      await scheduler.close();
    }
  });
});

describe('a refresh job whose lock lapsed while it ran', () => {
  it('is run again by BullMQ, counted in cardproxy_refresh_stalled_total and logged with its id', async () => {
    // The first call is held until the second arrives, so the second run is certain to reach the upstream.
    let secondCall!: () => void;
    const second = new Promise<void>((resolve) => (secondCall = resolve));
    const legacy = await startTestUpstream(async (call) => {
      if (legacy.calls.length === 1) await Promise.race([second, new Promise((r) => setTimeout(r, 10_000))]);
      else secondCall();
      return { body: cardsReply(call) };
    });
    // An upstream time-out far longer than the held call, so that only the stall makes a second call.
    const upstreams = { legacy: { url: legacy.url, timeoutMs: 30_000, concurrency: 4, retryDelayMs: 200 } };
    const proxy = await startTestProxy(testConfig(legacy.url, { budgetMs: 100, upstreams }), 'start');
    const body = cardsBody(['alpha', 'beta'], 'c_stalled');
    await postCards(proxy, body);
    await legacy.waitForCalls(1);

    // What a process blocked past lockDurationMs looks like to the others: the job's lock is gone.
    const { redis, queue, close } = openRefreshQueue(proxy);
    try {
      const [job] = await queue.getJobs(['active']);
      expect(job).toBeDefined();
      expect(await redis.del(`${queue.toKey(job!.id!)}:lock`)).toBe(1);

      await eventually(async () => textOf((await postCards(proxy, body)).body.cards[0]) === 'alpha for c_stalled', 10_000, 'the card to land');
      expect(legacy.calls).toHaveLength(2);
      const stalled = (await proxy.metrics.refreshStalled.get()).values;
      expect(stalled).toEqual([{ labels: { upstream: 'legacy' }, value: 1 }]);
      expect(proxy.logs.find('refresh job lost its lock while running: put back on the queue, it runs again')).toMatchObject([{ jobId: job!.id, upstream: 'legacy' }]);
    } finally {
      await close();
    }
  });
});
