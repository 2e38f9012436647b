/**
 * SPEC section 5, last paragraph: Redis unreachable. The process talks to the real Redis through
 * a TCP proxy that a test cuts (connects refused), blackholes (connects accepted, nothing
 * answered) and restores, so outages are real network failures seen by ioredis and BullMQ.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply, textOf, type FakeUpstream } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, startTestUpstream, eventually, postCards as postCardsUnbounded, redisUrl, startTestProxy as startUnbounded, testConfig, type TestProxy } from '../helpers/harness.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { maxReserveMs } from '../../src/core/budget-reserve.js';

const BUDGET_MS = 1000;
/** The upstream answers customers whose id starts with `slow` after this long (beyond the budget). */
const SLOW_MS = 2500;
const FAST_MS = 100;

let tcps: TcpProxy[] = [];

afterEach(async () => {
  // Restore first: a process shuts down against a working Redis, as it would after an outage.
  await Promise.all(tcps.map((t) => t.restore().catch(() => {})));
  await cleanupProxies();
  await Promise.all(tcps.map((t) => t.close()));
  tcps = [];
});

/** A fake upstream that answers in FAST_MS, or in SLOW_MS for customers named `slow…`. */
function legacyApi(): Promise<FakeUpstream> {
  return startTestUpstream((call) => ({
    body: cardsReply(call),
    delayMs: call.customerId?.startsWith('slow') ? SLOW_MS : FAST_MS,
  }));
}

async function redisThroughProxy(): Promise<TcpProxy> {
  const target = new URL(redisUrl());
  const tcp = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
  tcps.push(tcp);
  return tcp;
}

function outageConfig(upstreamUrl: string, tcp: TcpProxy, overrides: Record<string, unknown> = {}) {
  return testConfig(upstreamUrl, {
    redis: { url: tcp.url(redisUrl()), keyPrefix: `test-outage-${randomUUID().slice(0, 8)}` },
    budgetMs: BUDGET_MS,
    ...overrides,
  });
}

/** Fails with a message naming what hung, instead of a bare test time-out. */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

const postCards = (proxy: TestProxy, body: ReturnType<typeof cardsBody>) =>
  within(BUDGET_MS + 3000, `POST /cards for ${body.customer.id}`, postCardsUnbounded(proxy, body));
const startTestProxy = (config: ReturnType<typeof testConfig>) => within(10_000, 'start-up', startUnbounded(config));

const callsFor = (u: FakeUpstream, customerId: string) => u.calls.filter((c) => c.customerId === customerId).length;

async function get(proxy: TestProxy, url: string): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  const res = await within(5000, `GET ${url}`, proxy.app.inject({ method: 'GET', url }));
  return { status: res.statusCode, body: res.body, ms: performance.now() - started };
}

/** The value of one sample in the Prometheus text of GET /metrics (0 when absent). */
async function metric(proxy: TestProxy, name: string, labels: Record<string, string>): Promise<number> {
  const res = await get(proxy, '/metrics');
  expect(res.status).toBe(200);
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of res.body.split('\n')) {
    if (Object.keys(labels).length === 0 && line.startsWith(`${name} `)) return Number(line.slice(name.length + 1).trim());
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf('}'));
    const have = inner.split(',');
    if (want.every((w) => have.includes(w))) return Number(line.slice(line.indexOf('}') + 1).trim());
  }
  return 0;
}

/** Polls a GET route until it answers `status`; returns how long that took. */
async function untilStatus(proxy: TestProxy, url: string, status: number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  let last = 0;
  for (;;) {
    last = (await get(proxy, url)).status;
    const elapsed = performance.now() - started;
    if (last === status) return elapsed;
    if (elapsed > timeoutMs) throw new Error(`${url} still answers ${last} (want ${status}) after ${Math.round(elapsed)} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Waits until a cold card was refreshed through the queue and is then answered from the cache.
 * Two keys per request: a single-key request for a card just answered is a manual reload.
 */
async function expectServedFromCacheAgain(proxy: TestProxy, legacy: FakeUpstream, customerId: string): Promise<void> {
  const body = cardsBody(['alpha', 'beta'], customerId);
  await eventually(
    async () => {
      const res = await postCards(proxy, body);
      return res.status === 200 && res.body.cards.every((c: any) => c.components !== null && textOf(c) === `${c.key} for ${customerId}`);
    },
    8000,
    `a refresh of ${customerId} to land after recovery`,
  );
  expect(callsFor(legacy, customerId)).toBe(1); // one refresh, through the queue (the polls joined it)
  const cacheBefore = await metric(proxy, 'cardproxy_cards_served_total', { card_key: 'alpha', source: 'cache' });
  const warm = await postCards(proxy, body);
  expect(warm.status).toBe(200);
  expect(warm.body.cards.map((c: any) => textOf(c)).sort()).toEqual([`alpha for ${customerId}`, `beta for ${customerId}`]);
  expect(await metric(proxy, 'cardproxy_cards_served_total', { card_key: 'alpha', source: 'cache' })).toBe(cacheBefore + 1);
  expect(callsFor(legacy, customerId)).toBe(1);
}

describe('Redis cut while serving', () => {
  it('answers /cards within the budget from the upstream directly: data in time, placeholders otherwise', async () => {
    const legacy = await legacyApi();
    const tcp = await redisThroughProxy();
    const proxy = await startTestProxy(outageConfig(legacy.url, tcp));
    expect((await get(proxy, '/readyz')).status).toBe(200);

    await tcp.cut();
    const fast = await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_fast'));
    expect(fast.status).toBe(200);
    expect(fast.ms).toBeLessThan(BUDGET_MS + 100);
    const cards = Object.fromEntries(fast.body.cards.map((c: { key: string }) => [c.key, c])) as Record<string, any>;
    expect(textOf(cards.alpha)).toBe('alpha for c_fast');
    expect(textOf(cards.beta)).toBe('beta for c_fast');
    expect(cards.alpha.timeToLiveSeconds).toBe(300); // the card's TTL (defaults.ttlSeconds)
    // The serving process called the upstream itself: one batched call for both keys.
    expect(legacy.calls.filter((c) => c.customerId === 'c_fast').map((c) => c.keys.sort().join(','))).toEqual(['alpha,beta']);
    expect(await metric(proxy, 'cardproxy_cards_served_total', { card_key: 'alpha', source: 'refreshed' })).toBe(1);
    expect(proxy.logs.find('cards answered').at(-1)).toMatchObject({ degraded: true });

    const slow = await postCards(proxy, cardsBody(['alpha'], 'slow_1'));
    expect(slow.status).toBe(200);
    expect(slow.ms).toBeLessThan(BUDGET_MS + 100);
    // It did wait for the upstream, until its deadline: the budget less what the request keeps
    // back (at most a quarter: its time before it was read, which a test process's own busy event
    // loop adds to, and recent lateness; budget-reserve.ts).
    expect(slow.ms).toBeGreaterThanOrEqual(BUDGET_MS - maxReserveMs(BUDGET_MS));
    expect(slow.body.cards).toEqual([{ key: 'alpha', timeToLiveSeconds: 15, components: expect.any(Array) }]);
    expect(textOf(slow.body.cards[0])).toBe('Loading…');
    expect(await metric(proxy, 'cardproxy_cards_served_total', { card_key: 'alpha', source: 'placeholder' })).toBe(1);
    expect(await metric(proxy, 'cardproxy_budget_exhausted_total', { card_key: 'alpha' })).toBe(1);
    console.info(`redis cut: data answered in ${Math.round(fast.ms)} ms, placeholder in ${Math.round(slow.ms)} ms (budget ${BUDGET_MS} ms)`);
  });

  it('keeps refreshes single-flight within the process: 20 concurrent requests for one cold card, one upstream call', async () => {
    const legacy = await legacyApi();
    const tcp = await redisThroughProxy();
    const proxy = await startTestProxy(outageConfig(legacy.url, tcp));
    await tcp.cut();

    const answers = await Promise.all(Array.from({ length: 20 }, () => postCards(proxy, cardsBody(['alpha'], 'c_storm'))));
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(answers.every((a) => textOf(a.body.cards[0]) === 'alpha for c_storm')).toBe(true);
    expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(BUDGET_MS + 100);
    expect(callsFor(legacy, 'c_storm')).toBe(1);
    expect(await metric(proxy, 'cardproxy_cards_served_total', { card_key: 'alpha', source: 'refreshed' })).toBe(20);

    // The same for a card slower than the budget: 20 placeholders, still one call.
    const slow = await Promise.all(Array.from({ length: 20 }, () => postCards(proxy, cardsBody(['alpha'], 'slow_storm'))));
    expect(slow.every((a) => a.status === 200 && textOf(a.body.cards[0]) === 'Loading…')).toBe(true);
    expect(Math.max(...slow.map((a) => a.ms))).toBeLessThan(BUDGET_MS + 100);
    expect(callsFor(legacy, 'slow_storm')).toBe(1);
  });

  it('stops calling upstreams directly once nobody waits: calls end at the budget, queued ones never start, the concurrency holds', async () => {
    const legacy = await legacyApi();
    const tcp = await redisThroughProxy();
    const proxy = await startTestProxy(outageConfig(legacy.url, tcp));
    await tcp.cut();

    // Twenty new customers slower than the budget, all at once; concurrency 4.
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => postCards(proxy, cardsBody(['alpha'], `slow_gone_${i}`))));
    expect(answers.every((a) => a.status === 200 && textOf(a.body.cards[0]) === 'Loading…')).toBe(true);
    expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(BUDGET_MS + 1000); // twenty requests in one loaded test process
    const lastAnswer = Date.now();
    // The calls that got a slot were cancelled with their requests; a slot freed at one request's
    // deadline goes to a request still waiting only if it has time left for an answer, so calls
    // still queued at the end never start, and none outlives its requests.
    await eventually(() => legacy.inFlight === 0, 1000, 'the abandoned calls to be cancelled');
    const calls = () => legacy.calls.filter((c) => c.customerId?.startsWith('slow_gone_'));
    const started = calls().length;
    expect(started).toBeGreaterThanOrEqual(4);
    expect(started).toBeLessThan(20);
    // A call started at least 100 ms before its request's deadline reaches the upstream long before
    // it; 50 ms is only for a loaded machine.
    expect(calls().filter((c) => c.at > lastAnswer + 50)).toEqual([]);
    expect(legacy.maxInFlight).toBe(4);
    await new Promise((r) => setTimeout(r, SLOW_MS + 500));
    expect(calls()).toHaveLength(started);
    console.info(`redis cut: 20 slow cold requests answered by ${Math.round(Math.max(...answers.map((a) => a.ms)))} ms; ${started} direct calls, none after the budget`);
  });

  it('once Redis answers again, a call still waiting for a slot does not start: its request is answered from the cache', async () => {
    const legacy = await legacyApi();
    const tcp = await redisThroughProxy();
    const proxy = await startTestProxy(outageConfig(legacy.url, tcp, { budgetMs: 3000, upstreams: { legacy: { url: legacy.url, timeoutMs: 5000, concurrency: 1, retryDelayMs: 200 } } }));
    const body = cardsBody(['alpha', 'beta'], 'c_back');
    const cached = async () => (await postCards(proxy, body)).body.cards.every((c: any) => textOf(c) === `${c.key} for c_back`);
    await eventually(cached, 8000, 'c_back to be cached');
    const callsBefore = callsFor(legacy, 'c_back');

    await tcp.cut();
    const holder = postCards(proxy, cardsBody(['alpha'], 'slow_holder')); // the only slot, for 2.5 s
    await eventually(() => legacy.inFlight === 1, 2000, 'the slow call to hold the slot');
    const waiting = postCards(proxy, body); // cannot read the cache: its call waits for the slot
    await new Promise((r) => setTimeout(r, 200));
    await tcp.restore();
    const answer = await waiting;
    expect(answer.body.cards.map((c: any) => textOf(c)).sort()).toEqual(['alpha for c_back', 'beta for c_back']);
    expect(answer.ms).toBeLessThan(2000); // before the slot was free
    await holder;
    await new Promise((r) => setTimeout(r, 300));
    expect(callsFor(legacy, 'c_back')).toBe(callsBefore); // answered from the cache, no call started late
  });

  it('shows the outage in metrics (cardproxy_redis_up per role, degraded answers) and writes one warning per kind, without stacks', async () => {
    const legacy = await legacyApi();
    const tcp = await redisThroughProxy();
    const proxy = await startTestProxy(outageConfig(legacy.url, tcp));
    await eventually(async () => (await metric(proxy, 'cardproxy_redis_up', { role: 'subscriber' })) === 1, 3000, 'the subscriber to be up');
    for (const role of ['command', 'jobs', 'subscriber', 'worker:legacy']) expect(await metric(proxy, 'cardproxy_redis_up', { role })).toBe(1);
    expect(await metric(proxy, 'cardproxy_degraded_answers_total', {})).toBe(0);

    await tcp.cut();
    for (let i = 0; i < 6; i++) expect((await postCards(proxy, cardsBody(['alpha', 'beta'], `c_degraded_${i}`))).status).toBe(200);
    for (const role of ['command', 'jobs', 'subscriber', 'worker:legacy']) {
      await eventually(async () => (await metric(proxy, 'cardproxy_redis_up', { role })) === 0, 5000, `redis_up{role="${role}"} to be 0`);
    }
    expect(await metric(proxy, 'cardproxy_degraded_answers_total', {})).toBe(6);
    // Six requests, one line: the same fault is written once a window, with a count at its end.
    const unreachable = proxy.logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('cache unreachable: calling upstreams directly'));
    expect(unreachable).toHaveLength(1);
    // Connection errors repeat on every reconnect attempt: each distinct one once, and without a stack.
    const repeating = proxy.logs.lines.filter((l) => l.msg === 'redis connection error' || l.msg === 'refresh worker error');
    expect(repeating.length).toBeGreaterThan(0);
    expect(repeating.filter((l) => (l.err as { stack?: string } | undefined)?.stack !== undefined)).toEqual([]);
    expect(proxy.logs.lines.filter((l) => l.level === 40).length).toBeLessThan(15);

    await tcp.restore();
    await eventually(async () => (await metric(proxy, 'cardproxy_redis_up', { role: 'command' })) === 1, 5000, 'the command connection to be up again');
  });

  it('turns /readyz 503 within 5 s of the cut and 200 within 5 s of the restore, then serves from the cache again', async () => {
    const legacy = await legacyApi();
    const tcp = await redisThroughProxy();
    const proxy = await startTestProxy(outageConfig(legacy.url, tcp));
    expect((await get(proxy, '/readyz')).status).toBe(200);

    await tcp.cut();
    const down = await untilStatus(proxy, '/readyz', 503, 5000);
    // Liveness and metrics do not depend on Redis.
    expect((await get(proxy, '/healthz')).status).toBe(200);
    const scrape = await get(proxy, '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.ms).toBeLessThan(2000);
    // Let the reconnect back-off grow as in a real outage, answering requests meanwhile.
    for (let i = 0; i < 5; i++) {
      const res = await postCards(proxy, cardsBody(['alpha'], `c_during_${i}`));
      expect(res.status).toBe(200);
      expect(res.ms).toBeLessThan(BUDGET_MS + 100);
      await new Promise((r) => setTimeout(r, 300));
    }

    await tcp.restore();
    const up = await untilStatus(proxy, '/readyz', 200, 5000);
    console.info(`redis cut: /readyz 503 after ${Math.round(down)} ms; restore: /readyz 200 after ${Math.round(up)} ms`);

    await expectServedFromCacheAgain(proxy, legacy, 'c_after');
  });
});

describe('Redis unreachable at start', () => {
  it('starts all the same, answers in degraded mode, and recovers by itself after the restore', async () => {
    const legacy = await legacyApi();
    const tcp = await redisThroughProxy();
    await tcp.cut();
    const startedAt = performance.now();
    const proxy = await startTestProxy(outageConfig(legacy.url, tcp));
    const startMs = performance.now() - startedAt;

    expect((await get(proxy, '/healthz')).status).toBe(200);
    expect((await get(proxy, '/readyz')).status).toBe(503);
    const res = await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_cold_start'));
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(BUDGET_MS + 100);
    expect(textOf(res.body.cards[0])).toBe(`${res.body.cards[0].key} for c_cold_start`);
    const slow = await postCards(proxy, cardsBody(['alpha'], 'slow_cold_start'));
    expect(slow.ms).toBeLessThan(BUDGET_MS + 100);
    expect(textOf(slow.body.cards[0])).toBe('Loading…');
    const scrape = await get(proxy, '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.ms).toBeLessThan(2000);

    await tcp.restore();
    const up = await untilStatus(proxy, '/readyz', 200, 5000);
    console.info(`started without Redis in ${Math.round(startMs)} ms; after restore /readyz 200 in ${Math.round(up)} ms`);
    await expectServedFromCacheAgain(proxy, legacy, 'c_recovered');
  });
});

describe('Redis accepting connections but never answering', () => {
  it('answers /cards within the budget, /readyz 503, and recovers after the restore', async () => {
    const legacy = await legacyApi();
    const tcp = await redisThroughProxy();
    const proxy = await startTestProxy(outageConfig(legacy.url, tcp));
    expect((await get(proxy, '/readyz')).status).toBe(200);

    await tcp.blackhole();
    const times: number[] = [];
    for (const customer of ['c_hole_1', 'slow_hole_1', 'c_hole_2', 'slow_hole_2']) {
      const res = await postCards(proxy, cardsBody(['alpha'], customer));
      times.push(res.ms);
      expect(res.status).toBe(200);
      expect(res.ms, `answer for ${customer}`).toBeLessThan(BUDGET_MS + 200);
      expect(textOf(res.body.cards[0])).toBe(customer.startsWith('slow') ? 'Loading…' : `alpha for ${customer}`);
    }
    // Concurrent requests while Redis hangs: none waits on it beyond the budget.
    const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => postCards(proxy, cardsBody(['alpha', 'beta'], i % 2 ? `c_burst` : 'slow_burst'))));
    expect(burst.every((r) => r.status === 200 && r.ms < BUDGET_MS + 200)).toBe(true);
    const down = await untilStatus(proxy, '/readyz', 503, 5000);
    const scrape = await get(proxy, '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.ms).toBeLessThan(2000);
    console.info(`redis blackholed: /cards answered in ${times.map((t) => Math.round(t)).join(', ')} ms; max of burst ${Math.round(Math.max(...burst.map((r) => r.ms)))} ms; /readyz 503 after ${Math.round(down)} ms`);

    await tcp.restore();
    await untilStatus(proxy, '/readyz', 200, 5000);
    await expectServedFromCacheAgain(proxy, legacy, 'c_after_hole');
  });
});

describe('shutdown during an outage', () => {
  for (const outage of ['cut', 'blackhole'] as const) {
    it(`closes servers and workers promptly while Redis is ${outage === 'cut' ? 'cut' : 'blackholed'}`, async () => {
      const legacy = await legacyApi();
      const tcp = await redisThroughProxy();
      const config = outageConfig(legacy.url, tcp);
      const processes = [await startTestProxy(config), await startUnbounded(config, 'serve'), await startUnbounded(config, 'worker')];
      await tcp[outage]();
      await new Promise((r) => setTimeout(r, 300)); // let the clients notice
      const times = await Promise.all(
        processes.map(async (p, i) => {
          const started = performance.now();
          await within(3000, `close() of process ${i} while Redis is ${outage}`, p.close());
          return Math.round(performance.now() - started);
        }),
      );
      console.info(`close during a Redis ${outage} (start, serve, worker): ${times.join(', ')} ms`);
    });
  }
});
