/**
 * Operator warming (SPEC 10.2) through the admin API and the real CLI, and the priorities of
 * SPEC 10.4 with an upstream of concurrency 1: a waiting request beats queued warming, and a
 * request that joins a queued warm job raises it. Real Redis, BullMQ workers and HTTP upstream.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { admin } from '../helpers/admin-client.js';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, redisModes, startTestProxy, startTestUpstream, testConfig, type RedisMode } from '../helpers/harness.js';
import { runCli } from '../helpers/run-cli.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardproxy-warm-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await cleanupProxies();
});

async function setup(opts: { delayMs?: number; concurrency?: number; maxQueued?: number; role?: 'start' | 'serve'; mode?: RedisMode } = {}) {
  const legacy = await startTestUpstream((call) => ({ body: cardsReply(call), delayMs: opts.delayMs ?? 0 }));
  const config = testConfig(legacy.url, {
    admin: { token: 'warm-token' },
    budgetMs: 3000,
    upstreams: { legacy: { url: legacy.url, concurrency: opts.concurrency ?? 4, timeoutMs: 5000 } },
    cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy', scope: 'thread' } },
    ...(opts.maxQueued ? { warming: { maxQueued: opts.maxQueued } } : {}),
  }, opts.mode);
  const proxy = await startTestProxy(config, opts.role ?? 'start');
  return { legacy, proxy, config };
}

const warm = (proxy: Awaited<ReturnType<typeof setup>>['proxy'], body: unknown) => admin(proxy, 'POST', '/admin/warm', { body });

describe('POST /admin/warm', () => {
  it('queues the missing cards, counts only refreshes it queued, and validates its body', async () => {
    const { legacy, proxy } = await setup();
    const body = { workspaceId: 'w_test', customers: [{ id: 'c_1', email: 'c_1@example.com' }, { id: 'c_2', externalId: 'x2' }] };
    expect(await warm(proxy, body)).toMatchObject({ status: 200, body: { queued: 2 } }); // alpha only: no thread
    await legacy.waitForCalls(2);
    const c1 = legacy.calls.find((c) => c.customerId === 'c_1')!;
    expect(c1.body).toEqual({ cardKeys: ['alpha'], customer: { id: 'c_1', email: 'c_1@example.com', externalId: null }, thread: null, tenant: null });
    const refs = ['c_1', 'c_2'].map((customerId) => ({ workspaceId: 'w_test', customerId, threadId: null, cardKey: 'alpha' }));
    await eventually(async () => (await proxy.store.readStates(refs)).every((state) => state?.data), 5000, 'the warmed cards');
    expect((await warm(proxy, body)).body).toEqual({ queued: 0 }); // fresh cards are left alone
    expect((await warm(proxy, { ...body, threadId: 'th_1', cardKeys: ['beta'] })).body).toEqual({ queued: 2 });
    await legacy.waitForCalls(4);
    expect(legacy.calls.slice(2).map((c) => [c.keys, c.body.thread])).toEqual([
      [['beta'], { id: 'th_1', externalId: null }],
      [['beta'], { id: 'th_1', externalId: null }],
    ]);

    for (const [bad, field] of [
      [{ customers: [{ id: 'c_1' }] }, 'workspaceId'],
      [{ workspaceId: 'w', customers: [] }, 'customers'],
      [{ workspaceId: 'w', customers: Array.from({ length: 1001 }, (_, i) => ({ id: `c${i}` })) }, 'customers'],
      [{ workspaceId: 'w', customers: [{ id: '\ud800' }] }, 'customers[0].id'],
      [{ workspaceId: 'w', customers: [{ id: 'c' }], cardKeys: ['nope'] }, 'nope'],
    ] as const) {
      const res = await warm(proxy, bad);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
      expect(res.body.message).toContain(field);
    }
    expect((await admin(proxy, 'POST', '/admin/warm', { body, token: 'wrong' })).status).toBe(401);
    const enqueued = (await proxy.metrics.refreshesEnqueued.get()).values.filter((v) => v.value > 0).map((v) => [v.labels.trigger, v.value]);
    expect(enqueued).toEqual([['warm', 4]]);
  });

  it('drops warming past warming.maxQueued and counts it', async () => {
    const { proxy } = await setup({ delayMs: 2000, concurrency: 1, maxQueued: 3 });
    const customers = Array.from({ length: 10 }, (_, i) => ({ id: `m_${i}` }));
    const { body } = await warm(proxy, { workspaceId: 'w_test', customers });
    // One may already be running (not queued); at most 3 wait.
    expect(body.queued).toBeGreaterThanOrEqual(3);
    expect(body.queued).toBeLessThanOrEqual(4);
    const dropped = (await proxy.metrics.warmingDropped.get()).values[0]?.value;
    expect(dropped).toBe(10 - body.queued);
  });
});

describe('warm (CLI)', () => {
  it.each(redisModes())('warms a single customer, and a JSON-lines file with a progress line (%s Redis)', async (mode) => {
    // No worker: the queued jobs are counted where they wait (and cost this busy machine nothing).
    const { proxy, config } = await setup({ role: 'serve', mode });
    const configFile = join(dir, `${config.redis.keyPrefix}.json`);
    writeFileSync(configFile, JSON.stringify(config));
    const one = await runCli(['warm', '--config', configFile, '--workspace-id', 'w_test', '--customer-id', 'c_cli', '--email', 'cli@example.com']);
    expect(one.stdout).toBe('warmed 1 customer: 1 card refresh queued\n');
    expect(one.code).toBe(0);

    const file = join(dir, 'customers.jsonl');
    writeFileSync(file, Array.from({ length: 1050 }, (_, i) => JSON.stringify({ id: `f_${i}`, externalId: i % 2 ? `x${i}` : null })).join('\n') + '\n\n');
    const many = await runCli(['warm', '--config', configFile, '--workspace-id', 'w_test', '--file', file, '--card-key', 'alpha', '--json']);
    expect(many.code, many.stderr).toBe(0);
    expect(JSON.parse(many.stdout)).toEqual({ customers: 1050, queued: 1050 });
    expect(many.stderr).toContain('warm: 1000/1050 customers');
    expect(many.stderr).toContain('warm: 1050/1050 customers, 1050 card refreshes queued');
    const prioritized = `${proxy.store.keys.queuePrefix('legacy')}:refresh:prioritized`;
    expect(await proxy.redis.zcard(prioritized)).toBe(1051);
    // At warming priority (3): BullMQ scores a prioritized job priority × 2^32 + a counter.
    const [, lowestScore] = await proxy.redis.zrange(prioritized, '0', '0', 'WITHSCORES');
    expect(Math.floor(Number(lowestScore) / 2 ** 32)).toBe(3);

    writeFileSync(file, '{"id":"ok"}\nnot json\n');
    const bad = await runCli(['warm', '--config', configFile, '--workspace-id', 'w_test', '--file', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('line 2');
    const both = await runCli(['warm', '--config', configFile, '--workspace-id', 'w_test', '--file', file, '--customer-id', 'x']);
    expect(both.code).toBe(2);
  }, 30_000);
});

describe('priorities (SPEC 10.4), upstream concurrency 1', () => {
  it.each(redisModes())('a waiting request beats thirty queued warm jobs, and a request joining a queued warm job is not stuck behind the others (%s Redis)', async (mode) => {
    const { legacy, proxy } = await setup({ delayMs: 150, concurrency: 1, mode });
    const customers = Array.from({ length: 30 }, (_, i) => ({ id: `w_${i}` }));
    expect((await warm(proxy, { workspaceId: 'w_test', customers })).body.queued).toBe(30);
    await legacy.waitForCalls(1);

    // A new customer: cold, a request waits. Thirty warm jobs take 4.5 s; the budget is 3 s.
    const cold = await postCards(proxy, cardsBody(['alpha'], 'c_new'));
    expect(textOf(cold.body.cards[0])).toBe('alpha for c_new');
    // The last warm job in line, joined by an agent's request: raised to the request's priority.
    const joined = await postCards(proxy, cardsBody(['alpha'], 'w_29'));
    expect(textOf(joined.body.cards[0])).toBe('alpha for w_29');

    const order = legacy.calls.map((c) => c.customerId);
    expect(order.indexOf('c_new')).toBeLessThanOrEqual(2);
    expect(order.indexOf('w_29')).toBeLessThanOrEqual(order.indexOf('c_new') + 2);
    expect(order.filter((id) => id === 'w_29')).toHaveLength(1); // joined, not loaded twice
    expect(legacy.maxInFlight).toBe(1);
  });
});

describe('fair to the newest agent (a storm of new customers)', () => {
  it('lowers refreshes whose request was answered, so a new customer is not queued behind them', async () => {
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call), delayMs: 200 }));
    const config = testConfig(legacy.url, {
      budgetMs: 700,
      upstreams: { legacy: { url: legacy.url, concurrency: 1, timeoutMs: 5000 } },
      cards: { alpha: { upstream: 'legacy' } },
    });
    const proxy = await startTestProxy(config);
    // The storm: 15 new customers at once (3 s of upstream work); most agents get a placeholder.
    const storm = await Promise.all(Array.from({ length: 15 }, (_, i) => postCards(proxy, cardsBody(['alpha'], `s_${i}`))));
    expect(storm.filter((r) => textOf(r.body.cards[0]) === 'Loading…').length).toBeGreaterThanOrEqual(10);
    // Their jobs now wait at the background priority (2): BullMQ scores priority × 2^32 + a counter.
    const prioritized = `${proxy.store.keys.queuePrefix('legacy')}:refresh:prioritized`;
    await eventually(async () => {
      const scores = (await proxy.redis.zrange(prioritized, '0', '-1', 'WITHSCORES')).filter((_, i) => i % 2 === 1);
      return scores.length > 0 && scores.every((score) => Math.floor(Number(score) / 2 ** 32) === 2);
    }, 3000, 'the storm lowered');
    // A new customer afterwards (one call of 200 ms may be running): answered with data.
    const fresh = await postCards(proxy, cardsBody(['alpha'], 'c_newest'));
    expect(textOf(fresh.body.cards[0])).toBe('alpha for c_newest');
    const order = legacy.calls.map((c) => c.customerId);
    expect(order.indexOf('c_newest')).toBeLessThan(order.length); // loaded
    expect(order.filter((id) => id?.startsWith('s_')).length).toBeLessThan(15); // ahead of the storm's tail
  });

  it('lowers each job once, however many of its cards the request waited for', async () => {
    // The first job takes the only upstream slot and holds it past the test; the rest stay queued.
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call), delayMs: 4000 }));
    const config = testConfig(legacy.url, {
      budgetMs: 500,
      upstreams: { legacy: { url: legacy.url, concurrency: 1, timeoutMs: 5000 } },
      cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy' }, gamma: { upstream: 'legacy' } },
    });
    const proxy = await startTestProxy(config);
    const storm = await Promise.all(Array.from({ length: 6 }, (_, i) => postCards(proxy, cardsBody(['alpha', 'beta', 'gamma'], `m_${i}`))));
    expect(storm.flatMap((r) => r.body.cards.map(textOf))).toEqual(Array(18).fill('Loading…'));
    const queue = `${proxy.store.keys.queuePrefix('legacy')}:refresh`;
    await eventually(async () => {
      const scores = (await proxy.redis.zrange(`${queue}:prioritized`, '0', '-1', 'WITHSCORES')).filter((_, i) => i % 2 === 1);
      return scores.length === 5 && scores.every((score) => Math.floor(Number(score) / 2 ** 32) === 2);
    }, 3000, 'the five queued jobs lowered');
    // BullMQ counts every placement of a prioritized job: six adds, then one move per queued job.
    // Lowered once per card, each of the five would have been moved three times (6 + 15).
    expect(Number(await proxy.redis.get(`${queue}:pc`))).toBe(6 + 5);
    // A second look at a queued customer joins its job: raised to waiting, then, its budget spent
    // too, lowered again through the markers (the job is not its own): two moves more.
    // (A queued one: the job that holds the upstream slot is active, and moves no more.)
    const queuedJobs = new Set(await proxy.redis.zrange(`${queue}:prioritized`, '0', '-1'));
    const customers = Array.from({ length: 6 }, (_, i) => `m_${i}`);
    const owners = await proxy.store.inflightOwners(customers.map((customerId) => ({ workspaceId: 'w_test', customerId, threadId: null, cardKey: 'alpha' })));
    const at = owners.findIndex((owner) => owner !== null && queuedJobs.has(owner));
    expect(at).not.toBe(-1);
    const owner = owners[at]!;
    const again = await postCards(proxy, cardsBody(['alpha', 'beta', 'gamma'], customers[at]));
    expect(again.body.cards.map(textOf)).toEqual(Array(3).fill('Loading…'));
    await eventually(async () => Number(await proxy.redis.hget(`${queue}:${owner}`, 'priority')) === 2, 3000, 'the joined job lowered again');
    expect(Number(await proxy.redis.get(`${queue}:pc`))).toBe(6 + 5 + 2);
    expect(legacy.calls).toHaveLength(1);
  });
});
