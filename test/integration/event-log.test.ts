/**
 * The event log of SPEC section 6 against real Redis: every event type with its fields, the
 * atomicity of "append event + update projection", and retention trimming of the stream.
 */
import { encodeProjection } from '../../src/redis/card-codec.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { evolve, type CardState } from '../../src/core/card-state.js';
import type { CardStateEvent } from '../../src/core/card-events.js';
import { cleanupProxies, startTestUpstream, eventually, postCards, redisUrl, startTestProxy, testConfig } from '../helpers/harness.js';
import { admin } from '../helpers/admin-client.js';
import { readStream } from '../helpers/derived-keys.js';

const redis = new Redis(redisUrl());

afterAll(() => redis.disconnect());

afterEach(async () => {
  await cleanupProxies();
});

const upstream = startTestUpstream;

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function refreshedEvent(cardKey: string, at: number, text: string, customerId = 'c_1'): CardStateEvent {
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
      ttlSeconds: 300,
      fetchedAt: new Date(at).toISOString(),
      upstream: 'legacy',
      durationMs: 12,
    },
  };
}

describe('event types and their fields', () => {
  it('appends each event type with the fields of SPEC section 6, and counts it', async () => {
    const legacy = await upstream();
    const broken = await upstream(() => ({ status: 404, body: { error: 'no such customer' } }));
    const flaky = await upstream(() => ({ status: 503 }));
    const config = testConfig(legacy.url, {
      admin: { token: 'admin-secret' },
      budgetMs: 3000,
      upstreams: {
        legacy: { url: legacy.url },
        broken: { url: broken.url },
        flaky: { url: flaky.url, retries: 0 },
      },
      cards: {
        alpha: { upstream: 'legacy' },
        beta: { upstream: 'legacy', scope: 'thread' },
        gamma: { upstream: 'broken' },
        delta: { upstream: 'flaky' },
      },
    });
    const proxy = await startTestProxy(config);
    const keys = proxy.store.keys;
    const body = {
      cardKeys: ['alpha', 'beta', 'gamma', 'delta'],
      customer: { id: 'c_1', email: 'C_1@Example.com', externalId: 'ext-1' },
      thread: { id: 'th_1', externalId: null },
    };
    expect((await postCards(proxy, body)).status).toBe(200);
    await eventually(async () => (await readStream(redis, keys)).length >= 4, 5000, 'four card events');

    expect((await admin(proxy, 'POST', '/admin/invalidate', { body: { customerId: 'c_1' } })).body).toEqual({ invalidated: 2 });
    expect((await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 30 } })).status).toBe(200);
    expect((await admin(proxy, 'DELETE', '/admin/cards/alpha/ttl')).status).toBe(200);

    const events = await readStream(redis, keys);
    const one = (type: string, cardKey: string) => events.find((e) => e.type === type && e.data.cardKey === cardKey)!;

    const alpha = one('card.refreshed', 'alpha');
    expect(alpha.data).toMatchObject({
      workspaceId: 'w_test',
      customerId: 'c_1',
      threadId: null,
      cardKey: 'alpha',
      components: [{ componentText: { text: 'alpha for c_1' } }],
      ttlSeconds: 300,
      upstream: 'legacy',
      trigger: 'request',
    });
    expect(alpha.data.fetchedAt).toMatch(ISO);
    expect(alpha.data.durationMs).toBeGreaterThanOrEqual(0);
    expect(one('card.refreshed', 'beta').data).toMatchObject({ threadId: 'th_1', cardKey: 'beta' });

    expect(one('card.refresh_failed', 'gamma').data).toMatchObject({
      workspaceId: 'w_test',
      customerId: 'c_1',
      threadId: null,
      cardKey: 'gamma',
      upstream: 'broken',
      errorKind: 'integration',
      status: 404,
      trigger: 'request',
    });
    expect(typeof one('card.refresh_failed', 'gamma').data.detail).toBe('string');
    expect(one('card.refresh_failed', 'delta').data).toMatchObject({ upstream: 'flaky', errorKind: 'retriable', status: 503 });

    // Only the two cards with data were marked; cards holding only a failure have nothing to mark.
    const invalidated = events.filter((e) => e.type === 'card.invalidated');
    expect(invalidated.map((e) => [e.data.cardKey, e.data.threadId]).sort()).toEqual([
      ['alpha', null],
      ['beta', 'th_1'],
    ]);
    expect(invalidated[0]!.data).toMatchObject({ workspaceId: 'w_test', customerId: 'c_1', reason: expect.any(String) });

    expect(one('ttl.override_set', 'alpha').data).toEqual({ cardKey: 'alpha', ttlSeconds: 30 });
    expect(one('ttl.override_cleared', 'alpha').data).toEqual({ cardKey: 'alpha' });
    // Entries hold exactly the two fields `type` and `data`.
    const [, fields] = ((await redis.xrange(keys.eventStream(0), '-', '+', 'COUNT', 1)) as Array<[string, string[]]>)[0]!;
    expect(fields.filter((_, i) => i % 2 === 0)).toEqual(['type', 'data']);

    const counted = Object.fromEntries((await proxy.metrics.eventsAppended.get()).values.map((v) => [v.labels.type, v.value]));
    expect(counted).toEqual({
      'card.refreshed': 2,
      'card.refresh_failed': 2,
      'card.invalidated': 2,
      'ttl.override_set': 1,
      'ttl.override_cleared': 1,
    });
    const text = await proxy.metrics.registry.metrics();
    expect(text).toContain('cardproxy_events_appended_total{type="card.invalidated"} 2');
    // One job per upstream group: alpha and beta together, gamma, delta.
    expect(text).toContain('cardproxy_refreshes_enqueued_total{upstream="legacy",trigger="request"} 2');
    expect(text).toContain('cardproxy_refreshes_enqueued_total{upstream="broken",trigger="request"} 1');
  });
});

describe('atomicity: event and projection are written together', () => {
  it('writes no projection and no index entry when the event cannot be appended', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards'));
    const { store } = proxy;
    const keys = store.keys;
    const ref = { workspaceId: 'w_test', customerId: 'c_1', threadId: null, cardKey: 'alpha' };
    await redis.set(keys.eventStream(0), 'not a stream'); // XADD now fails inside the script

    await expect(store.applyCardEvents([refreshedEvent('alpha', Date.now(), 'v1')])).rejects.toThrow(/WRONGTYPE/);
    expect(await redis.exists(keys.card(ref), keys.components(ref), keys.customerCards('w_test', 'c_1'), keys.customerIndex(0, 'id', 'c_1'))).toBe(0);
    await expect(store.applyOverrideEvent({ type: 'ttl.override_set', data: { cardKey: 'alpha', ttlSeconds: 9 } })).rejects.toThrow(/WRONGTYPE/);
    expect(await redis.exists(keys.ttlOverrides)).toBe(0);

    await redis.del(keys.eventStream(0));
    const [id] = await store.applyCardEvents([refreshedEvent('alpha', Date.now(), 'v1')]);
    expect(await redis.exists(keys.card(ref))).toBe(1);
    expect((await readStream(redis, keys)).map((e) => e.id)).toEqual([id]);
  });

  it('keeps every projection equal to the fold of its events under concurrent writers', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards'));
    const { store } = proxy;
    const keys = store.keys;
    const t0 = Date.now();
    // Six writers race on the same cards: their reads all go out before their writes, so all but
    // one lose the compare-and-set each round and must re-read and evolve again.
    const writers = Array.from({ length: 6 }, (_, i) => i);
    await Promise.all(
      writers.map(async (i) => {
        const failed: CardStateEvent = {
          type: 'card.refresh_failed',
          data: {
            workspaceId: 'w_test',
            customerId: 'c_1',
            threadId: null,
            cardKey: 'alpha',
            upstream: 'legacy',
            errorKind: 'retriable',
            detail: `writer ${i}`,
            status: 503,
            failedAt: new Date(t0 + i).toISOString(),
          },
        };
        await store.applyCardEvents(i % 2 === 0 ? [refreshedEvent('alpha', t0 + i, `v${i}`)] : [failed]);
        await store.applyCardEvents([refreshedEvent('beta', t0 + i, `b${i}`)]);
      }),
    );
    const events = await readStream(redis, keys);
    expect(events).toHaveLength(12);
    for (const cardKey of ['alpha', 'beta']) {
      const folded = events
        .filter((e) => e.data.cardKey === cardKey)
        .reduce<CardState | undefined>((state, e) => evolve(state, { type: e.type, data: e.data } as CardStateEvent), undefined);
      const ref = { workspaceId: 'w_test', customerId: 'c_1', threadId: null, cardKey };
      expect(await redis.get(keys.card(ref))).toBe(encodeProjection(folded!));
      expect(await redis.get(keys.components(ref))).toBe(JSON.stringify(folded!.data!.components));
    }
  });
});

describe('retention', () => {
  it('trims events older than events.retentionSeconds (approximate MINID) and keeps recent ones', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards', { events: { retentionSeconds: 60 } }), 'serve');
    const { store } = proxy;
    const keys = store.keys;
    // A log written over the last two minutes: 250 events from 120 s ago, 20 from 30 s ago.
    const now = Date.now();
    const seed = (ms: number, seq: number) =>
      redis.xadd(keys.eventStream(0), `${ms}-${seq}`, 'type', 'ttl.override_set', 'data', JSON.stringify({ cardKey: 'alpha', ttlSeconds: seq + 1 }));
    for (let i = 0; i < 250; i++) await seed(now - 120_000, i);
    for (let i = 0; i < 20; i++) await seed(now - 30_000, i);

    const newest = await store.applyOverrideEvent({ type: 'ttl.override_cleared', data: { cardKey: 'alpha' } });
    const ids = ((await redis.xrange(keys.eventStream(0), '-', '+')) as Array<[string, string[]]>).map(([id]) => id);
    const old = ids.filter((id) => id.startsWith(`${now - 120_000}-`));
    // Approximate trimming drops whole stream nodes: most of the old events go...
    expect(old.length).toBeLessThanOrEqual(150);
    // ...and nothing within the retention does.
    expect(ids.filter((id) => id.startsWith(`${now - 30_000}-`))).toHaveLength(20);
    expect(ids.at(-1)).toBe(newest);
  });

  it('warns at start when the retention is shorter than the longest ttlSeconds + staleSeconds', async () => {
    const proxy = await startTestProxy(
      testConfig('http://127.0.0.1:9/cards', { events: { retentionSeconds: 3600 }, defaults: { ttlSeconds: 600, staleSeconds: 7200 } }),
      'serve',
    );
    const warning = proxy.logs.lines.find((l) => l.level === 40 && String(l.msg).includes('events.retentionSeconds (3600)'));
    expect(warning?.msg).toMatch(/600 \+ 7200 = 7800.*replay can only restore/);
  });
});
