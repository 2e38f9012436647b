/**
 * SPEC section 14 with the near cache: two `serve` instances (each with its own Redis
 * connections, near cache and event feed) and a separate `worker`, against the real Redis and a
 * real upstream. A change made through one instance (a refresh landing, an invalidation, a TTL
 * override, a replay) is seen by the other within 100 ms: no request that starts later than that
 * is answered with the copy from before. Also: the feed breaking (the near cache is dropped and
 * Redis read until the feed is back) and the memory bound.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { admin } from '../helpers/admin-client.js';
import { cardsBody, cleanupProxies, eventually, postCards, redisUrl, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { keyLayout } from '../../src/redis/keys.js';
import { CardStore } from '../../src/redis/card-store.js';
import { replayEventLog } from '../../src/redis/replay.js';
import { systemClock } from '../../src/core/clock.js';

const SPEC_14_MS = 100;

let tcp: TcpProxy | undefined;
let redis: Redis | undefined;
afterEach(async () => {
  await cleanupProxies();
  await tcp?.close();
  tcp = undefined;
  redis?.disconnect();
  redis = undefined;
});

/** The near cache's look-up counts as /metrics reports them. */
async function nearMetric(proxy: TestProxy, name: string): Promise<Record<string, number>> {
  const metric = await proxy.metrics.registry.getSingleMetric(name)!.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.result ?? v.labels.reason ?? ''), v.value]));
}

interface Answer {
  readonly startedAt: number;
  readonly text: string;
  readonly ttl: number;
}

/**
 * Asks `proxy` for the card until `isNew` holds for an answer, and checks SPEC 14 on the way:
 * every answer to a request that started more than 100 ms after `changedAt` must be new.
 */
async function watchUntilSeen(proxy: TestProxy, body: unknown, changedAt: () => number | null, isNew: (a: Answer) => boolean): Promise<Answer[]> {
  const answers: Answer[] = [];
  const deadline = Date.now() + 10_000;
  for (;;) {
    const startedAt = Date.now();
    const res = await postCards(proxy, body);
    expect(res.status).toBe(200);
    const card = res.body.cards.find((c: { key: string }) => c.key === 'alpha');
    const answer = { startedAt, text: textOf(card), ttl: card.timeToLiveSeconds as number };
    answers.push(answer);
    const at = changedAt();
    if (at !== null && startedAt > at + SPEC_14_MS) {
      expect(isNew(answer), `a request started ${startedAt - at} ms after the change got ${JSON.stringify(answer)}`).toBe(true);
    }
    if (at !== null && isNew(answer)) return answers;
    if (Date.now() > deadline) throw new Error(`change never seen: ${JSON.stringify(answers.slice(-3))}`);
    await new Promise((r) => setTimeout(r, 3));
  }
}

/** The time (ms, Redis clock) of the newest event of `type` after `afterId`, or null. */
async function landedAt(client: Redis, stream: string, type: string, afterId: string): Promise<number | null> {
  const entries = (await client.xrange(stream, `(${afterId}`, '+')) as Array<[string, string[]]>;
  const hit = entries.find(([, fields]) => fields[fields.indexOf('type') + 1] === type);
  return hit ? Number(hit[0].split('-')[0]) : null;
}

async function lastId(client: Redis, stream: string): Promise<string> {
  const newest = (await client.xrevrange(stream, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
  return newest[0]?.[0] ?? '0-0';
}

async function cluster(overrides: Record<string, unknown> = {}) {
  let version = 1;
  const legacy = await startTestUpstream((call) => ({ body: cardsReply(call, { text: (key) => `${key} v${version}` }) }));
  const config = testConfig(legacy.url, { defaults: { ttlSeconds: 300, staleServeTtlSeconds: 3 }, admin: { token: 'admin-secret' }, ...overrides });
  const worker = await startTestProxy(config, 'worker');
  const a = await startTestProxy(config, 'serve');
  const b = await startTestProxy(config, 'serve');
  redis = new Redis(redisUrl());
  return { legacy, config, worker, a, b, keys: keyLayout(config.redis.keyPrefix), setVersion: (v: number) => (version = v) };
}

/** Loads the card and asks until `proxy` answers it from its near cache. */
async function warmNear(proxy: TestProxy, body: unknown): Promise<void> {
  await eventually(async () => {
    const before = await nearMetric(proxy, 'cardproxy_near_cache_lookups_total');
    const res = await postCards(proxy, body);
    const after = await nearMetric(proxy, 'cardproxy_near_cache_lookups_total');
    return res.body.cards[0]?.timeToLiveSeconds > 3 && after.hit! > before.hit!;
  }, 10_000, 'a near-cache hit');
}

describe('SPEC 14 across two serve instances with near caches', () => {
  it.each([
    ['a refresh landing', 'refresh'],
    ['an invalidation', 'invalidate'],
  ] as const)('never serves the copy from before %s more than 100 ms after it', async (_name, kind) => {
    const { a, b, keys, setVersion } = await cluster();
    const body = cardsBody(['alpha', 'beta'], 'c_near');
    await postCards(a, body);
    await warmNear(b, body);
    const from = await lastId(redis!, keys.eventStream(0));
    setVersion(2);
    const change = admin(a, 'POST', '/admin/invalidate', { body: { customerId: 'c_near', refresh: kind === 'refresh' } });
    let changedAt: number | null = null;
    const type = kind === 'refresh' ? 'card.refreshed' : 'card.invalidated';
    const poll = setInterval(() => {
      void landedAt(redis!, keys.eventStream(0), type, from).then((at) => (changedAt ??= at));
    }, 2);
    try {
      // Before: fresh v1 (TTL near 300). After an invalidation: served stale (TTL 3) until the
      // refresh it triggers lands with v2; after a refresh: v2.
      const answers = await watchUntilSeen(b, body, () => changedAt, (x) => (kind === 'refresh' ? x.text === 'alpha v2' : x.ttl === 3 || x.text === 'alpha v2'));
      expect(answers.at(-1)!.startedAt - changedAt!).toBeLessThan(2000);
    } finally {
      clearInterval(poll);
    }
    expect((await change).status).toBe(200);
  });

  it('sees a TTL override set through the other instance at once, and applies it to the next load it serves', async () => {
    const { a, b, keys, setVersion } = await cluster();
    const body = cardsBody(['alpha', 'beta'], 'c_near');
    await postCards(a, body);
    await warmNear(b, body);
    expect((await admin(a, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 42 } })).status).toBe(200);
    // Overrides live in Redis only (no process keeps them): the other instance lists it at once.
    const listed = await admin(b, 'GET', '/admin/cards');
    expect(listed.body.cards.find((c: { key: string }) => c.key === 'alpha').overrideTtlSeconds).toBe(42);
    // A card loaded after it carries the override, and B serves that load, not its near copy.
    const from = await lastId(redis!, keys.eventStream(0));
    setVersion(2);
    await admin(a, 'POST', '/admin/invalidate', { body: { customerId: 'c_near', refresh: true } });
    let landed: number | null = null;
    const poll = setInterval(() => void landedAt(redis!, keys.eventStream(0), 'card.refreshed', from).then((at) => (landed ??= at)), 2);
    try {
      const answers = await watchUntilSeen(b, body, () => landed, (x) => x.text === 'alpha v2');
      expect(answers.at(-1)!.ttl).toBeLessThanOrEqual(42);
    } finally {
      clearInterval(poll);
    }
    expect((await admin(a, 'DELETE', '/admin/cards/alpha/ttl')).status).toBe(200);
    expect((await admin(b, 'GET', '/admin/cards')).body.cards.find((c: { key: string }) => c.key === 'alpha').overrideTtlSeconds).toBeNull();
  });

  it('drops what a replay rewrote within 100 ms of the replay', async () => {
    const { a, b, keys, config } = await cluster();
    const body = cardsBody(['alpha', 'beta'], 'c_near');
    await postCards(a, body);
    await eventually(async () => (await redis!.exists(keys.card({ workspaceId: 'w_test', customerId: 'c_near', threadId: null, cardKey: 'alpha' }))) === 1);
    // The projection drifts from the log without an event (a hand edit); B reads and keeps it.
    const componentsKey = keys.components({ workspaceId: 'w_test', customerId: 'c_near', threadId: null, cardKey: 'alpha' });
    const good = (await redis!.get(componentsKey))!;
    await redis!.set(componentsKey, good.replace('alpha v1', 'alpha drifted'), 'KEEPTTL');
    await eventually(async () => textOf((await postCards(b, body)).body.cards[0]) === 'alpha drifted', 5000, 'B to read the drifted copy');
    await warmNear(b, body);

    // `cardproxy replay`, as the CLI runs it: its own connection and store.
    const replayRedis = new Redis(redisUrl());
    try {
      const store = new CardStore({ redis: replayRedis, keys, clock: systemClock, retentionSeconds: config.events.retentionSeconds, retentionFor: () => config.defaults });
      await replayEventLog({ redis: replayRedis, store, keys });
    } finally {
      replayRedis.disconnect();
    }
    const replayedAt = Date.now();
    await watchUntilSeen(b, body, () => replayedAt, (x) => x.text === 'alpha v1');
    // B may have answered from Redis (a lagging feed bypasses the near cache) before its next poll saw the epoch.
    await eventually(async () => ((await nearMetric(b, 'cardproxy_near_cache_flushes_total')).replay ?? 0) >= 1, 1000, 'the replay flush');
  });
});

describe('when the event feed breaks', () => {
  it('drops the near cache, reads Redis (or calls upstreams directly) until the feed is back, and never serves the old copy afterwards', async () => {
    let version = 1;
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call, { text: (key) => `${key} v${version}` }) }));
    const target = new URL(redisUrl());
    tcp = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const base = testConfig(legacy.url, { defaults: { ttlSeconds: 300 }, admin: { token: 'admin-secret' } });
    await startTestProxy(base, 'worker');
    const a = await startTestProxy(base, 'serve');
    // B reaches Redis only through the TCP proxy.
    const b = await startTestProxy({ ...base, redis: { ...base.redis, url: tcp.url(redisUrl()) } }, 'serve');
    const body = cardsBody(['alpha', 'beta'], 'c_feed');
    await postCards(a, body);
    await warmNear(b, body);
    const flushesBefore = (await nearMetric(b, 'cardproxy_near_cache_flushes_total')).feed_broken ?? 0;

    await tcp.cut();
    await eventually(async () => ((await nearMetric(b, 'cardproxy_near_cache_flushes_total')).feed_broken ?? 0) > flushesBefore, 5000, 'the flush');
    const gauge = await b.metrics.registry.getSingleMetric('cardproxy_near_cache_feed_up')!.get();
    expect(gauge.values[0]!.value).toBe(0);
    expect((await b.metrics.registry.getSingleMetric('cardproxy_near_cache_entries')!.get()).values[0]!.value).toBe(0);

    // A change made while B's feed is down.
    version = 2;
    await admin(a, 'POST', '/admin/invalidate', { body: { customerId: 'c_feed', refresh: true } });
    await eventually(async () => textOf((await postCards(a, body)).body.cards[0]) === 'alpha v2', 5000, 'the refresh');
    // B, cut off from Redis, still answers (degraded: the upstream directly, which has v2 too).
    expect((await postCards(b, body)).status).toBe(200);

    await tcp.restore();
    await eventually(async () => (await b.metrics.registry.getSingleMetric('cardproxy_near_cache_feed_up')!.get()).values[0]!.value === 1, 10_000, 'the feed back');
    const hitsBefore = (await nearMetric(b, 'cardproxy_near_cache_lookups_total')).hit!;
    for (let i = 0; i < 5; i++) expect(textOf((await postCards(b, body)).body.cards[0])).toBe('alpha v2');
    // ...and the near cache is in use again.
    await eventually(async () => {
      await postCards(b, body);
      return (await nearMetric(b, 'cardproxy_near_cache_lookups_total')).hit! > hitsBefore;
    }, 5000, 'near-cache hits again');
  });
});

describe('memory bound', () => {
  it("remembers a card's served marker of its own context only: warm answers in new threads write theirs and hold nothing more", async () => {
    const legacy = await startTestUpstream();
    const config = testConfig(legacy.url, { defaults: { ttlSeconds: 300 } });
    const proxy = await startTestProxy(config, 'start');
    const gauge = async (name: string) => (await proxy.metrics.registry.getSingleMetric(name)!.get()).values[0]!.value;
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_threads')); // cold: loads
    await new Promise((r) => setTimeout(r, 150)); // the feed has passed the loads' events
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_threads')); // into the near cache, with the customer's markers
    redis = new Redis(redisUrl());
    const keys = keyLayout(config.redis.keyPrefix);
    await eventually(async () => (await redis!.hexists(keys.served('w_test', 'c_threads', null), 'beta')) === 1);
    await new Promise((r) => setTimeout(r, 100)); // the markers' reply has been handled
    const held = await gauge('cardproxy_near_cache_bytes');
    const hits = (await nearMetric(proxy, 'cardproxy_near_cache_lookups_total')).hit!;
    for (let t = 0; t < 20; t++) {
      const res = await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_threads', { thread: { id: `t_${t}`, externalId: null } }));
      expect(res.body.cards.map((c: { timeToLiveSeconds: number }) => c.timeToLiveSeconds)).toEqual([240, 240]);
    }
    const markers = Array.from({ length: 20 }, (_, t) => keys.served('w_test', 'c_threads', `t_${t}`));
    await eventually(async () => (await Promise.all(markers.map((hash) => redis!.hlen(hash)))).every((fields) => fields === 2));
    await new Promise((r) => setTimeout(r, 100));
    // Answered from the near cache (a lagging feed may send a few to Redis), each thread's markers
    // written, and the near cache no larger: 40 remembered markers would have added 8,000 bytes.
    expect((await nearMetric(proxy, 'cardproxy_near_cache_lookups_total')).hit! - hits).toBeGreaterThan(20);
    expect(await gauge('cardproxy_near_cache_bytes')).toBe(held);
    // The customer's own markers are still remembered: its next answer writes none. (Marked in
    // Redis so that a rewrite, of the same value, would show.)
    const own = keys.served('w_test', 'c_threads', null);
    const marked = String(Number(await redis.hget(own, 'alpha')) + 1);
    await redis.hset(own, 'alpha', marked);
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_threads'));
    await new Promise((r) => setTimeout(r, 100));
    expect(await redis.hget(own, 'alpha')).toBe(marked);
    expect(legacy.calls).toHaveLength(1);
  });

  it('keeps the near cache under nearCache.maxBytes while far more cards pass through it, evicting the least recently used', async () => {
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call, { text: (key, id) => `${key} for ${id} ${'x'.repeat(1000)}` }) }));
    const maxBytes = 40_000;
    const config = testConfig(legacy.url, { defaults: { ttlSeconds: 300 }, nearCache: { maxBytes } });
    const proxy = await startTestProxy(config, 'start');
    const gauge = async (name: string) => (await proxy.metrics.registry.getSingleMetric(name)!.get()).values[0]!.value;
    for (let i = 0; i < 60; i++) await postCards(proxy, cardsBody(['alpha', 'beta'], `c_mem_${i}`)); // cold: loads
    await new Promise((r) => setTimeout(r, 150)); // the feed has passed the loads' events
    let peak = 0;
    for (let i = 0; i < 60; i++) {
      await postCards(proxy, cardsBody(['alpha', 'beta'], `c_mem_${i}`)); // read from Redis into the near cache
      peak = Math.max(peak, await gauge('cardproxy_near_cache_bytes'));
    }
    // 120 cards of ~1.4 KB each passed through; at most ~26 fit.
    expect(peak).toBeLessThanOrEqual(maxBytes);
    expect(peak).toBeGreaterThan(maxBytes / 2);
    const entries = await gauge('cardproxy_near_cache_entries');
    expect(entries).toBeGreaterThan(5);
    expect(entries).toBeLessThan(40);
    // The most recent customer is still held; the first ones were evicted (read from Redis again).
    const before = await nearMetric(proxy, 'cardproxy_near_cache_lookups_total');
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_mem_59'));
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_mem_0'));
    const after = await nearMetric(proxy, 'cardproxy_near_cache_lookups_total');
    const bypassed = after.bypass! - before.bypass!;
    if (bypassed === 0) {
      expect(after.hit! - before.hit!).toBe(2);
      expect(after.miss! - before.miss!).toBe(2);
    }
    expect(legacy.calls).toHaveLength(60);
  });
});
