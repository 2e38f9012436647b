/**
 * The admin API of SPEC section 7 against real Redis, BullMQ and HTTP upstreams: bearer-token
 * auth, the card listing and run-time TTL overrides (across server processes), invalidation by
 * each identifier, and the event query.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, startTestUpstream, eventually, postCards, redisUrl, startTestProxy, testConfig, type TestProxy } from '../helpers/harness.js';
import { admin } from '../helpers/admin-client.js';

const TOKEN = 'admin-secret-token';

const redis = new Redis(redisUrl());

afterAll(() => redis.disconnect());
afterEach(async () => {
  await cleanupProxies();
});

const upstream = startTestUpstream;

const byKey = (body: { cards: Array<{ key: string }> }) => Object.fromEntries(body.cards.map((c) => [c.key, c])) as Record<string, any>;

/** A Plain request for a customer with an email and external id, in a workspace and thread. */
function request(customerId: string, opts: { email?: string | null; externalId?: string | null; thread?: string; keys?: string[] } = {}) {
  return {
    cardKeys: opts.keys ?? ['alpha', 'beta'],
    customer: { id: customerId, email: opts.email === undefined ? `${customerId}@example.com` : opts.email, externalId: opts.externalId ?? null },
    thread: opts.thread ? { id: opts.thread, externalId: null } : null,
  };
}

async function adminProxy(upstreamUrl: string, overrides: Record<string, unknown> = {}, role: 'start' | 'serve' | 'worker' = 'start') {
  return startTestProxy(
    testConfig(upstreamUrl, {
      admin: { token: TOKEN },
      budgetMs: 3000,
      cards: { alpha: { upstream: 'legacy', ttlSeconds: 600 }, beta: { upstream: 'legacy', scope: 'thread', staleSeconds: 60 } },
      ...overrides,
    }),
    role,
  );
}

describe('authentication', () => {
  const routes: Array<['GET' | 'PUT' | 'POST' | 'DELETE', string, unknown?]> = [
    ['GET', '/admin/cards'],
    ['PUT', '/admin/cards/alpha/ttl', { ttlSeconds: 60 }],
    ['DELETE', '/admin/cards/alpha/ttl'],
    ['POST', '/admin/invalidate', { customerId: 'c_1' }],
    ['GET', '/admin/events'],
  ];

  it('answers 404 for the whole /admin tree when no token is configured', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards'));
    expect(proxy.config.admin.token).toBeNull();
    for (const [method, url, body] of [...routes, ['GET', '/admin'] as const, ['GET', '/admin/nope'] as const]) {
      const res = await admin(proxy, method, url, { token: 'anything', body });
      expect(res.status, `${method} ${url}`).toBe(404);
      expect(res.body).toMatchObject({ error: 'not_found', message: expect.any(String) });
    }
  });

  it('answers 401 without the right bearer token and 200 with it', async () => {
    const proxy = await adminProxy('http://127.0.0.1:9/cards');
    const wrong: Array<[string, Record<string, string>]> = [
      ['no header', {}],
      ['wrong token', { authorization: 'Bearer not-the-token' }],
      ['wrong token of the same length', { authorization: `Bearer ${'x'.repeat(TOKEN.length)}` }],
      ['the token with a suffix', { authorization: `Bearer ${TOKEN}x` }],
      ['another scheme', { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }],
      ['the bare token', { authorization: TOKEN }],
    ];
    for (const [method, url, body] of routes) {
      for (const [name, headers] of wrong) {
        const res = await admin(proxy, method, url, { token: null, headers, body });
        expect(res.status, `${method} ${url}: ${name}`).toBe(401);
        expect(res.body).toEqual({ error: 'unauthorized', message: expect.any(String) });
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      }
      expect((await admin(proxy, method, url, { body })).status, `${method} ${url}`).toBe(200);
    }
    expect((await admin(proxy, 'GET', '/admin/cards', { token: null, headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
    // Unknown admin routes: auth first, then 404.
    for (const url of ['/admin', '/admin/', '/admin/nope', '/admin/cards/alpha']) {
      expect((await admin(proxy, 'GET', url, { token: 'wrong' })).status, url).toBe(401);
      expect((await admin(proxy, 'GET', url)).status, url).toBe(404);
    }
    // The body of an unauthenticated request is never looked at.
    expect((await admin(proxy, 'POST', '/admin/invalidate', { token: null, body: 'not json' })).status).toBe(401);
  });

  it('is not served by a worker-only process', async () => {
    const proxy = await adminProxy('http://127.0.0.1:9/cards', {}, 'worker');
    expect((await admin(proxy, 'GET', '/admin/cards')).status).toBe(404);
  });
});

describe('cards and TTL overrides', () => {
  const alpha = { key: 'alpha', upstream: 'legacy', scope: 'customer', ttlSeconds: 600, staleSeconds: 86_400 };
  const beta = { key: 'beta', upstream: 'legacy', scope: 'thread', ttlSeconds: 300, staleSeconds: 60 };

  it('lists the configured cards with their overrides, and sets and clears overrides', async () => {
    const proxy = await adminProxy('http://127.0.0.1:9/cards');
    expect((await admin(proxy, 'GET', '/admin/cards')).body).toEqual({
      cards: [
        { ...alpha, overrideTtlSeconds: null },
        { ...beta, overrideTtlSeconds: null },
      ],
    });

    const set = await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 45 } });
    expect(set).toMatchObject({ status: 200, body: { ...alpha, overrideTtlSeconds: 45 } });
    expect((await admin(proxy, 'GET', '/admin/cards')).body.cards).toEqual([
      { ...alpha, overrideTtlSeconds: 45 },
      { ...beta, overrideTtlSeconds: null },
    ]);

    const cleared = await admin(proxy, 'DELETE', '/admin/cards/alpha/ttl');
    expect(cleared).toMatchObject({ status: 200, body: { ...alpha, overrideTtlSeconds: null } });
    expect(await admin(proxy, 'DELETE', '/admin/cards/alpha/ttl')).toMatchObject({ status: 200, body: { ...alpha, overrideTtlSeconds: null } });
    expect((await admin(proxy, 'GET', '/admin/cards')).body.cards[0].overrideTtlSeconds).toBeNull();

    // A plain `curl -d` sends a form content type: the body is JSON all the same.
    const curl = await admin(proxy, 'PUT', '/admin/cards/beta/ttl', { body: '{"ttlSeconds":5}', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(curl).toMatchObject({ status: 200, body: { ...beta, overrideTtlSeconds: 5 } });
  });

  it('answers 404 for an unknown card and 400 naming the field for an invalid body', async () => {
    const proxy = await adminProxy('http://127.0.0.1:9/cards');
    expect(await admin(proxy, 'PUT', '/admin/cards/nope/ttl', { body: { ttlSeconds: 60 } })).toMatchObject({
      status: 404,
      body: { error: 'unknown_card', message: expect.stringContaining('nope') },
    });
    expect((await admin(proxy, 'DELETE', '/admin/cards/nope/ttl')).status).toBe(404);

    for (const body of [{ ttlSeconds: 0 }, { ttlSeconds: 1.5 }, { ttlSeconds: '60' }, { ttlSeconds: -1 }, {}, { ttlSeconds: null }]) {
      const res = await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toEqual({ error: 'invalid_request', message: expect.stringContaining('ttlSeconds') });
    }
    expect((await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 5, extra: 1 } })).body.message).toContain('extra');
    expect((await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: '{"ttlSeconds":' })).body).toMatchObject({ error: 'invalid_json' });
    expect((await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: '[60]' })).body).toMatchObject({ error: 'invalid_body' });
    expect((await admin(proxy, 'PUT', '/admin/cards/alpha/ttl')).status).toBe(400);
    expect(await redis.exists(proxy.store.keys.ttlOverrides)).toBe(0);
  });

  it('applies an override set on one server to cards loaded by every instance after it', async () => {
    const legacy = await upstream((call) => ({ body: cardsReply(call, { ttl: 120 }) }));
    const a = await adminProxy(legacy.url, { defaults: { refreshAhead: 0 } }, 'serve'); // TTLs as loaded
    const b = await startTestProxy(a.config, 'serve');
    await startTestProxy(a.config, 'worker');

    await postCards(b, cardsBody(['alpha', 'beta'], 'c_before'));
    expect((await admin(a, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 7 } })).status).toBe(200);
    expect((await admin(b, 'GET', '/admin/cards')).body.cards[0]).toEqual({ ...alpha, overrideTtlSeconds: 7 });

    const after = byKey((await postCards(b, cardsBody(['alpha', 'beta'], 'c_after'))).body);
    expect(after.alpha.timeToLiveSeconds).toBe(7); // override beats the upstream's 120
    expect(after.beta.timeToLiveSeconds).toBe(120);
    // A card loaded before the override keeps the TTL it was loaded with.
    expect(byKey((await postCards(b, cardsBody(['alpha', 'beta'], 'c_before'))).body).alpha.timeToLiveSeconds).toBeGreaterThan(100);
    await expect(a.metrics.eventsAppended.get()).resolves.toMatchObject({ values: [{ labels: { type: 'ttl.override_set' }, value: 1 }] });
  });
});

describe('invalidation', () => {
  /** Loads cards for: c_1 in w_test (alpha, beta in th_1) and in w_other (alpha); c_2 in w_test (alpha, beta). */
  async function loaded() {
    let version = 1;
    const legacy = await upstream((call) => ({ body: cardsReply(call, { text: (key, id) => `${key} ${id} v${version}` }) }));
    const proxy = await adminProxy(legacy.url, { defaults: { staleServeTtlSeconds: 3 } });
    await postCards(proxy, request('c_1', { externalId: 'ext-1', thread: 'th_1' }));
    await postCards(proxy, request('c_1', { keys: ['alpha'] }), { 'plain-workspace-id': 'w_other' });
    await postCards(proxy, request('c_2', { email: 'Mixed.Case@Example.com' }));
    expect(legacy.calls).toHaveLength(3);
    return { legacy, proxy, bump: () => (version += 1) };
  }

  const invalidate = async (proxy: TestProxy, body: unknown) => {
    const res = await admin(proxy, 'POST', '/admin/invalidate', { body });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.invalidated as number;
  };

  it('finds cards by customerId, email (any case) or externalId, narrowed by workspaceId and cardKeys', async () => {
    const { proxy } = await loaded();
    expect(await invalidate(proxy, { customerId: 'c_1', workspaceId: 'w_other' })).toBe(1);
    expect(await invalidate(proxy, { customerId: 'c_1', cardKeys: ['beta'] })).toBe(1);
    expect(await invalidate(proxy, { customerId: 'c_1' })).toBe(3);
    expect(await invalidate(proxy, { email: 'C_1@EXAMPLE.COM' })).toBe(3);
    expect(await invalidate(proxy, { email: 'mixed.case@example.com', workspaceId: 'w_test' })).toBe(2);
    expect(await invalidate(proxy, { externalId: 'ext-1' })).toBe(2);
    expect(await invalidate(proxy, { externalId: 'EXT-1' })).toBe(0); // external ids are case-sensitive
    expect(await invalidate(proxy, { customerId: 'c_unknown' })).toBe(0);
    expect(await invalidate(proxy, { customerId: 'c_1', workspaceId: 'w_none' })).toBe(0);
    expect(await invalidate(proxy, { customerId: 'c_2', email: null, externalId: null })).toBe(2);
  });

  it('marks cards stale: the next load serves them stale and refreshes them in the background', async () => {
    const { legacy, proxy, bump } = await loaded();
    bump();
    expect(await invalidate(proxy, { email: 'c_1@example.com', workspaceId: 'w_test' })).toBe(2);
    expect(legacy.calls).toHaveLength(3); // nothing refreshed yet

    const stale = byKey((await postCards(proxy, request('c_1', { externalId: 'ext-1', thread: 'th_1' }))).body);
    expect(stale.alpha).toMatchObject({ timeToLiveSeconds: 3 });
    expect(textOf(stale.alpha)).toBe('alpha c_1 v1');
    expect(textOf(stale.beta)).toBe('beta c_1 v1');
    await eventually(
      async () => textOf(byKey((await postCards(proxy, request('c_1', { externalId: 'ext-1', thread: 'th_1' }))).body).alpha) === 'alpha c_1 v2',
      5000,
      'background refresh',
    );
    // The other workspace's copy was not touched.
    const other = byKey((await postCards(proxy, request('c_1', { keys: ['alpha', 'beta'] }), { 'plain-workspace-id': 'w_other' })).body);
    expect(textOf(other.alpha)).toBe('alpha c_1 v1');
    const lookups = await proxy.metrics.cardLookups.get();
    expect(lookups.values.find((v) => v.labels.card_key === 'alpha' && v.labels.result === 'stale')?.value).toBeGreaterThanOrEqual(1);
  });

  it('with refresh: true, queues the refresh at once, in the thread of thread-scoped cards', async () => {
    const { legacy, proxy, bump } = await loaded();
    bump();
    expect(await invalidate(proxy, { externalId: 'ext-1', refresh: true })).toBe(2);
    await legacy.waitForCalls(5);
    const calls = legacy.calls.slice(3);
    const forAlpha = calls.find((c) => c.keys.includes('alpha'))!;
    const forBeta = calls.find((c) => c.keys.includes('beta'))!;
    expect(forAlpha.body).toMatchObject({ customer: { id: 'c_1', email: 'c_1@example.com', externalId: 'ext-1' }, thread: null });
    expect(forBeta.body).toMatchObject({ customer: { id: 'c_1' }, thread: { id: 'th_1' } });
    expect(forAlpha.headers['plain-workspace-id']).toBe('w_test');

    await eventually(async () => {
      const res = byKey((await postCards(proxy, request('c_1', { externalId: 'ext-1', thread: 'th_1' }))).body);
      return textOf(res.alpha) === 'alpha c_1 v2' && textOf(res.beta) === 'beta c_1 v2' && res.alpha.timeToLiveSeconds > 15;
    }, 5000, 'refreshed cards');
    expect(legacy.calls).toHaveLength(5);
  });

  it('counts only cached cards with data', async () => {
    const broken = await upstream(() => ({ status: 404 }));
    const proxy = await adminProxy(broken.url);
    await postCards(proxy, request('c_3'));
    await eventually(async () => (await redis.exists(proxy.store.keys.customerIndex(0, 'id', 'c_3'))) === 1, 5000, 'failure recorded');
    expect(await invalidate(proxy, { customerId: 'c_3' })).toBe(0);
    expect((await proxy.metrics.eventsAppended.get()).values.find((v) => v.labels.type === 'card.invalidated')).toBeUndefined();
  });

  it('answers 400 naming the field for an invalid body', async () => {
    const proxy = await adminProxy('http://127.0.0.1:9/cards');
    const cases: Array<[unknown, string]> = [
      [{}, 'exactly one of customerId, email or externalId'],
      [{ customerId: 'c_1', email: 'a@b.co' }, 'email'],
      [{ customerId: '' }, 'customerId'],
      [{ customerId: 'c_1', refresh: 'yes' }, 'refresh'],
      [{ customerId: 'c_1', cardKeys: ['bad key'] }, 'cardKeys[0]'],
      [{ customerId: 'c_1', cardKeys: 'alpha' }, 'cardKeys'],
      [{ customerId: 'c_1', workspaceId: 7 }, 'workspaceId'],
      [{ customer_id: 'c_1' }, 'customer_id'],
    ];
    for (const [body, field] of cases) {
      const res = await admin(proxy, 'POST', '/admin/invalidate', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toEqual({ error: 'invalid_request', message: expect.stringContaining(field) });
    }
    expect((await admin(proxy, 'POST', '/admin/invalidate', { body: 'customerId=c_1' })).body).toMatchObject({ error: 'invalid_json' });
  });
});

describe('GET /admin/events', () => {
  it('returns events newest first with id, type, at and data, filtered and limited', async () => {
    const legacy = await upstream();
    const proxy = await adminProxy(legacy.url);
    await postCards(proxy, request('c_1'));
    await postCards(proxy, request('c_2'));
    await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 30 } });

    const all = (await admin(proxy, 'GET', '/admin/events')).body.events as Array<{ id: string; type: string; at: string; data: any }>;
    expect(all).toHaveLength(5);
    expect(all[0]).toEqual({ id: expect.any(String), type: 'ttl.override_set', at: expect.any(String), data: { cardKey: 'alpha', ttlSeconds: 30 } });
    for (const event of all) {
      expect(Object.keys(event)).toEqual(['id', 'type', 'at', 'data']);
      expect(event.at).toBe(new Date(Number(event.id.split('-')[0])).toISOString());
    }
    const ids = all.map((e) => e.id);
    const idOrder = (id: string) => id.split('-').map(Number) as [number, number];
    expect(ids).toEqual([...ids].sort((x, y) => idOrder(y)[0] - idOrder(x)[0] || idOrder(y)[1] - idOrder(x)[1]));

    const get = async (query: string) => (await admin(proxy, 'GET', `/admin/events${query}`)).body.events as typeof all;
    expect((await get('?customerId=c_2')).map((e) => [e.data.customerId, e.data.cardKey]).sort()).toEqual([
      ['c_2', 'alpha'],
      ['c_2', 'beta'],
    ]);
    expect((await get('?cardKey=alpha')).map((e) => e.type)).toEqual(['ttl.override_set', 'card.refreshed', 'card.refreshed']);
    expect((await get('?type=card.refreshed&cardKey=beta&customerId=c_1')).map((e) => e.data.customerId)).toEqual(['c_1']);
    expect((await get('?type=ttl.override_cleared')).length).toBe(0);
    expect(await get('?limit=2')).toEqual(all.slice(0, 2));
    expect(await get('?limit=1000')).toEqual(all);
  });

  it('defaults to 100 events and pages backwards through the stream to find older matches', async () => {
    const legacy = await upstream();
    const proxy = await adminProxy(legacy.url);
    await postCards(proxy, request('c_old'));
    for (let i = 0; i < 700; i++) await proxy.store.applyOverrideEvent({ type: 'ttl.override_set', data: { cardKey: 'alpha', ttlSeconds: i + 1 } });

    const newest = (await admin(proxy, 'GET', '/admin/events')).body.events;
    expect(newest).toHaveLength(100);
    expect(newest[0].data.ttlSeconds).toBe(700);
    expect((await admin(proxy, 'GET', '/admin/events?limit=1000')).body.events).toHaveLength(702);
    const old = (await admin(proxy, 'GET', '/admin/events?customerId=c_old')).body.events;
    expect(old.map((e: any) => e.data.cardKey).sort()).toEqual(['alpha', 'beta']);
  });

  it('answers 400 naming the parameter for a bad query', async () => {
    const proxy = await adminProxy('http://127.0.0.1:9/cards');
    for (const [query, field] of [
      ['?limit=0', 'limit'],
      ['?limit=1001', 'limit'],
      ['?limit=abc', 'limit'],
      ['?limit=1.5', 'limit'],
      ['?type=card.exploded', 'type'],
      ['?customerId=', 'customerId'],
      ['?limit=1&limit=2', 'limit'],
    ]) {
      const res = await admin(proxy, 'GET', `/admin/events${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body).toEqual({ error: 'invalid_request', message: expect.stringContaining(field!) });
    }
  });
});

describe('without Redis', () => {
  it('answers 503 with a JSON error, not 500, while Redis is unreachable', async () => {
    // Nothing listens on port 1: the server starts in degraded mode after its start-up wait.
    const config = testConfig('http://127.0.0.1:9/cards', { admin: { token: TOKEN }, redis: { url: 'redis://127.0.0.1:1', keyPrefix: 'test-noredis' } });
    const proxy = await startTestProxy(config);
    for (const [method, url, body] of [
      ['GET', '/admin/cards', undefined],
      ['PUT', '/admin/cards/alpha/ttl', { ttlSeconds: 60 }],
      ['GET', '/admin/events', undefined],
    ] as const) {
      const res = await admin(proxy, method, url, { body });
      expect(res.status, `${method} ${url}`).toBe(503);
      expect(res.body).toMatchObject({ error: 'unavailable', message: expect.stringContaining('Redis') });
    }
    // Bad input is still bad input.
    expect((await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 0 } })).status).toBe(400);
  });
});
