/**
 * `replay` (SPEC section 6): deleting every derived key and replaying the event log restores the
 * cards byte for byte, the customer index and the TTL overrides, idempotently and in batches, so
 * that requests are answered from the cache again without upstream calls. Also while servers write.
 */
import { encodeProjection } from '../../src/redis/card-codec.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { eventTime, type CardStateEvent } from '../../src/core/card-events.js';
import { EMPTY_CARD_STATE, evolve, evolveKept, type CardState, type RetentionPolicy } from '../../src/core/card-state.js';
import { systemClock, type Clock } from '../../src/core/clock.js';
import type { Config } from '../../src/config/schema.js';
import { CardStore } from '../../src/redis/card-store.js';
import { replayEventLog } from '../../src/redis/replay.js';
import { cleanupProxies, startTestUpstream, eventually, ManualClock, postCards, redisUrl, startTestProxy, testConfig, type TestProxy } from '../helpers/harness.js';
import { admin } from '../helpers/admin-client.js';
import { deleteAllDerivedKeys, readStream, snapshotDerivedKeys } from '../helpers/derived-keys.js';
import { runCli } from '../helpers/run-cli.js';

const S = 1000;
const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const POLICY: RetentionPolicy = { staleSeconds: 100, integrationErrorTtlSeconds: 50 };

function refreshed(at: number, cardKey = 'alpha', customerId = 'c_1', text = `v${at}`): CardStateEvent {
  return {
    type: 'card.refreshed',
    data: {
      workspaceId: 'w_test',
      customerId,
      threadId: null,
      cardKey,
      customerEmail: `${customerId}@example.com`,
      customerExternalId: null,
      components: [{ componentText: { text } }],
      ttlSeconds: 10,
      fetchedAt: iso(at),
      upstream: 'legacy',
      durationMs: 5,
    },
  };
}

function failed(at: number, kind: 'retriable' | 'integration' = 'integration', cardKey = 'alpha', customerId = 'c_1'): CardStateEvent {
  return {
    type: 'card.refresh_failed',
    data: { workspaceId: 'w_test', customerId, threadId: null, cardKey, upstream: 'legacy', errorKind: kind, detail: 'HTTP 404', status: 404, failedAt: iso(at) },
  };
}

function invalidated(at: number, cardKey = 'alpha', customerId = 'c_1'): CardStateEvent {
  return { type: 'card.invalidated', data: { workspaceId: 'w_test', customerId, threadId: null, cardKey, reason: 'test', invalidatedAt: iso(at) } };
}

describe('evolveKept: evolve as the cache saw it when the event happened', () => {
  const fold = (events: CardStateEvent[]) => events.reduce<CardState | undefined>((s, e) => evolveKept(s, e, POLICY), undefined);
  const failure = (at: number) => ({ kind: 'integration' as const, at, detail: 'HTTP 404', status: 404 });

  it.each<[string, CardStateEvent[], CardState]>([
    ['a failure within the stale window keeps the data', [refreshed(T0), failed(T0 + 50 * S)], { ...evolve(undefined, refreshed(T0)), failure: failure(T0 + 50 * S) }],
    ['a failure after the stale window finds nothing cached', [refreshed(T0), failed(T0 + 111 * S)], { ...EMPTY_CARD_STATE, failure: failure(T0 + 111 * S) }],
    ['an invalidation after the stale window marks nothing', [refreshed(T0), invalidated(T0 + 200 * S)], EMPTY_CARD_STATE],
    ['an invalidation within it marks the data', [refreshed(T0), invalidated(T0 + 20 * S)], { ...evolve(undefined, refreshed(T0)), invalidatedAt: T0 + 20 * S }],
    [
      'a negatively cached failure keeps its state alive for integrationErrorTtlSeconds',
      [failed(T0), failed(T0 + 40 * S, 'retriable')],
      { ...EMPTY_CARD_STATE, failure: { ...failure(T0 + 40 * S), kind: 'retriable', detail: 'HTTP 404' } },
    ],
  ])('%s', (_name, events, expected) => {
    expect(fold(events)).toStrictEqual(expected);
  });

  it('is evolve whenever nothing expired in between', () => {
    const events = [refreshed(T0, 'alpha', 'c_1'), failed(T0 + S), invalidated(T0 + 2 * S), refreshed(T0 + 3 * S)];
    expect(fold(events)).toStrictEqual(events.reduce<CardState | undefined>(evolve, undefined));
    expect(eventTime(events[2]!)).toBe(T0 + 2 * S);
  });
});

const redis = new Redis(redisUrl());
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardproxy-replay-'));
});
afterAll(() => {
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await cleanupProxies();
});

const upstream = startTestUpstream;

/** Runs `node dist/cli.js replay --config <file> --json` and returns its exit code and summary. */
async function replayCli(config: Config): Promise<{ code: number | null; summary: any; stderr: string }> {
  const file = join(dir, `${config.redis.keyPrefix}.json`);
  writeFileSync(file, JSON.stringify(config));
  const { code, stdout, stderr } = await runCli(['replay', '--config', file, '--json'], { LOG_LEVEL: 'warn' });
  let summary: unknown;
  try {
    summary = JSON.parse(stdout);
  } catch {
    summary = stdout;
  }
  return { code, summary, stderr };
}

const byKey = (body: { cards: Array<{ key: string }> }) => Object.fromEntries(body.cards.map((c) => [c.key, c])) as Record<string, any>;
const TOKEN = 'replay-admin-token';

function plainRequest(customerId: string, thread: string | null, keys = ['alpha', 'beta']) {
  return {
    cardKeys: keys,
    customer: { id: customerId, email: `${customerId.toUpperCase()}@Example.com`, externalId: `ext-${customerId}` },
    thread: thread === null ? null : { id: thread, externalId: null },
  };
}

/** Every key of a prefix that replay must leave alone: the log, queues, markers. */
async function untouchableKeys(proxy: TestProxy): Promise<string[]> {
  const all = await redis.keys(`${proxy.config.redis.keyPrefix}:*`);
  const derived = new Set(Object.keys(await snapshotDerivedKeys(redis, proxy.store.keys)));
  return all.filter((key) => !derived.has(key)).sort();
}

describe('replay', () => {
  it('restores byte-identical cards, index and overrides, idempotently; requests are then served without upstream calls', async () => {
    const legacy = await upstream();
    const broken = await upstream(() => ({ status: 404 }));
    const config = testConfig(legacy.url, {
      admin: { token: TOKEN },
      budgetMs: 3000,
      upstreams: { legacy: { url: legacy.url }, broken: { url: broken.url } },
      cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy', scope: 'thread' }, gamma: { upstream: 'broken' } },
    });
    const proxy = await startTestProxy(config);
    const keys = proxy.store.keys;
    await postCards(proxy, plainRequest('c_1', 'th_1'));
    await postCards(proxy, plainRequest('c_2', null));
    await postCards(proxy, plainRequest('c_3', null, ['gamma'])); // only a failure is cached
    expect((await admin(proxy, 'POST', '/admin/invalidate', { body: { customerId: 'c_2' } })).body).toEqual({ invalidated: 2 });
    await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 45 } });
    await admin(proxy, 'PUT', '/admin/cards/beta/ttl', { body: { ttlSeconds: 9 } });
    await admin(proxy, 'DELETE', '/admin/cards/beta/ttl');
    const calls = legacy.calls.length + broken.calls.length;

    const before = await snapshotDerivedKeys(redis, keys);
    const cardKeys = Object.keys(before).filter((k) => k.includes(':card:'));
    expect(cardKeys).toHaveLength(5);
    expect(before[keys.ttlOverrides]).toEqual({ alpha: '45' });
    expect(before[keys.customerIndex(0, 'email', 'c_1@example.com')]).toEqual(['w_test\nc_1']);
    const kept = await untouchableKeys(proxy);
    expect(kept).toContain(keys.eventStream(0));

    expect(await deleteAllDerivedKeys(redis, keys)).toBe(Object.keys(before).length);
    expect(await snapshotDerivedKeys(redis, keys)).toEqual({});

    const first = await replayCli(config);
    expect(first.code, first.stderr).toBe(0);
    expect(first.summary).toMatchObject({
      eventsRead: await redis.xlen(keys.eventStream(0)),
      cardEvents: 7, // 4 loads, 1 failure, 2 invalidations
      overrideEvents: 3,
      skipped: 0,
      cardsWritten: 5,
      cardsExpired: 0,
      overrides: 1,
    });
    expect(await snapshotDerivedKeys(redis, keys)).toEqual(before);
    // The log, queue keys and served markers are all still there (BullMQ's stalled-check comes and goes).
    const stable = kept.filter((key) => !key.endsWith(':stalled-check'));
    expect(stable.some((key) => key.includes(':served:'))).toBe(true);
    expect(stable.some((key) => key.includes('{refresh-'))).toBe(true);
    expect(await redis.exists(...stable)).toBe(stable.length);

    const second = await replayCli(config);
    expect(second.code).toBe(0);
    expect(second.summary.keysDeleted).toBe(Object.keys(before).length - 1); // all but the override hash, replaced in place
    expect(await snapshotDerivedKeys(redis, keys)).toEqual(before);

    // Served from the cache again, without a single upstream call.
    const warm = byKey((await postCards(proxy, plainRequest('c_1', 'th_1'))).body);
    expect(warm.alpha.components).toEqual([{ componentText: { text: 'alpha for c_1' } }]);
    expect(warm.beta.components).toEqual([{ componentText: { text: 'beta for c_1' } }]);
    expect(legacy.calls.length + broken.calls.length).toBe(calls);
    const lookups = (await proxy.metrics.cardLookups.get()).values.filter((v) => v.labels.result === 'fresh');
    expect(lookups.reduce((n, v) => n + v.value, 0)).toBe(2);
    // Overrides and the look-up index are back.
    expect((await admin(proxy, 'GET', '/admin/cards')).body.cards.map((c: any) => c.overrideTtlSeconds)).toEqual([45, null, null]);
    expect((await admin(proxy, 'POST', '/admin/invalidate', { body: { email: 'c_1@EXAMPLE.com' } })).body).toEqual({ invalidated: 2 });
    expect((await admin(proxy, 'POST', '/admin/invalidate', { body: { externalId: 'ext-c_1' } })).body).toEqual({ invalidated: 2 });
  });

  it('skips entries that are not valid events and counts them', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards'), 'serve');
    const { store } = proxy;
    const keys = store.keys;
    await store.applyCardEvents([refreshed(Date.now())]);
    await redis.xadd(keys.eventStream(0), '*', 'type', 'card.exploded', 'data', '{}');
    await redis.xadd(keys.eventStream(0), '*', 'type', 'card.refreshed', 'data', 'not json');
    await redis.xadd(keys.eventStream(0), '*', 'type', 'card.refreshed', 'data', JSON.stringify({ cardKey: 'alpha' }));
    await redis.xadd(keys.eventStream(0), '*', 'something', 'else');
    await store.applyOverrideEvent({ type: 'ttl.override_set', data: { cardKey: 'alpha', ttlSeconds: 5 } });
    const before = await snapshotDerivedKeys(redis, keys);
    await deleteAllDerivedKeys(redis, keys);

    const summary = await replayEventLog({ redis, store, keys });
    expect(summary).toMatchObject({ eventsRead: 6, skipped: 4, cardEvents: 1, overrideEvents: 1, cardsWritten: 1, overrides: 1 });
    expect(await snapshotDerivedKeys(redis, keys)).toEqual(before);
  });

  it('gives the same keys whatever the batch size', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards'), 'serve');
    const { store } = proxy;
    const keys = store.keys;
    const now = Date.now();
    for (let i = 0; i < 40; i++) {
      const customer = `c_${i % 7}`;
      const cardKey = i % 3 === 0 ? 'beta' : 'alpha';
      const event = i % 5 === 4 ? failed(now + i, 'retriable', cardKey, customer) : i % 4 === 3 ? invalidated(now + i, cardKey, customer) : refreshed(now + i, cardKey, customer);
      await store.applyCardEvents([event]);
      if (i % 9 === 0) await store.applyOverrideEvent({ type: 'ttl.override_set', data: { cardKey, ttlSeconds: i + 1 } });
    }
    const live = await snapshotDerivedKeys(redis, keys);
    for (const batchSize of [1, 3, 500]) {
      await deleteAllDerivedKeys(redis, keys);
      const summary = await replayEventLog({ redis, store, keys, batchSize });
      expect(summary.eventsRead).toBe(45);
      expect(await snapshotDerivedKeys(redis, keys), `batch size ${batchSize}`).toEqual(live);
    }
  });

  it('does not write cards whose keep-until has passed, by the retention of the current config', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards'), 'serve');
    const keys = proxy.store.keys;
    const now = Date.now();
    await proxy.store.applyCardEvents([refreshed(now - 50 * S, 'alpha'), refreshed(now - 50 * S, 'beta')]); // ttl 10 s
    const replayWith = (clock: Clock, staleSeconds: number) =>
      replayEventLog({
        redis,
        keys,
        store: new CardStore({ redis, keys, clock, retentionSeconds: 3600, retentionFor: (key) => ({ staleSeconds: key === 'alpha' ? staleSeconds : 3600, integrationErrorTtlSeconds: 300 }) }),
      });
    const ref = (cardKey: string) => keys.card({ workspaceId: 'w_test', customerId: 'c_1', threadId: null, cardKey });

    // alpha's stale window is now 30 s: it ended 10 s ago.
    expect(await replayWith(systemClock, 30)).toMatchObject({ cardsWritten: 1, cardsExpired: 1 });
    expect(await redis.exists(ref('alpha'), ref('beta'))).toBe(1);
    expect(await redis.smembers(keys.customerCards('w_test', 'c_1'))).toEqual([ref('beta')]);
    // With a longer window it is restored again.
    expect(await replayWith(systemClock, 60)).toMatchObject({ cardsWritten: 2, cardsExpired: 0 });
    // And an hour later nothing is left worth keeping.
    const later = new ManualClock(now + 2 * 3600 * S);
    expect(await replayWith(later, 60)).toMatchObject({ cardsWritten: 0, cardsExpired: 2 });
    expect(await redis.exists(ref('alpha'), ref('beta'), keys.customerCards('w_test', 'c_1'))).toBe(0);
  });

  it('converges to the projection of the whole log when servers write while it runs', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards'), 'serve');
    const { store } = proxy;
    const keys = store.keys;
    const eventFor = (i: number): CardStateEvent => {
      const customer = `c_${i % 20}`;
      const cardKey = i % 2 === 0 ? 'alpha' : 'beta';
      const at = Date.now();
      return i % 7 === 3 ? failed(at, 'retriable', cardKey, customer) : i % 5 === 2 ? invalidated(at, cardKey, customer) : refreshed(at, cardKey, customer, `v${i}`);
    };
    for (let i = 0; i < 150; i++) await store.applyCardEvents([eventFor(i)]);

    // Replay on a connection of its own (as the CLI would), racing a live writer on another.
    const replayRedis = new Redis(redisUrl());
    try {
      const replayStore = new CardStore({ redis: replayRedis, keys, clock: systemClock, retentionSeconds: 3600, retentionFor: () => proxy.config.defaults });
      let writing = true;
      let liveWrites = 0;
      const writer = (async () => {
        for (let i = 150; writing || i < 200; i++) {
          await new Promise((r) => setTimeout(r, 1)); // a busy server, not a tight loop
          await store.applyCardEvents([eventFor(i)]);
          liveWrites++;
          if (i % 10 === 0) await store.applyOverrideEvent({ type: 'ttl.override_set', data: { cardKey: 'alpha', ttlSeconds: i } });
          if (i > 400) break;
        }
      })();
      const summary = await replayEventLog({ redis: replayRedis, store: replayStore, keys, batchSize: 7 });
      writing = false;
      const duringReplay = liveWrites;
      await writer;
      expect(duringReplay).toBeGreaterThan(0); // the two really overlapped
      expect(summary.eventsRead).toBeGreaterThan(150);
    } finally {
      replayRedis.disconnect();
    }

    // Every card equals the fold of its events in the log; the overrides those of the log.
    const events = await readStream(redis, keys);
    const folded = new Map<string, CardState | undefined>();
    for (const e of events) {
      if (!e.type.startsWith('card.')) continue;
      const key = keys.card(e.data);
      folded.set(key, evolveKept(folded.get(key), { type: e.type, data: e.data } as CardStateEvent, proxy.config.defaults));
    }
    for (const [key, state] of folded) {
      const ref = keys.parseCard(key)!;
      expect(await redis.get(key), key).toBe(state ? encodeProjection(state) : null);
      expect(await redis.get(keys.components(ref)), key).toBe(state?.data ? JSON.stringify(state.data.components) : null);
    }
    const lastOverride = events.filter((e) => e.type === 'ttl.override_set').at(-1);
    await eventually(async () => (await redis.hget(keys.ttlOverrides, 'alpha')) === String(lastOverride?.data.ttlSeconds), 2000, 'overrides');
  });
});
