/**
 * The admin API the operator console reads (SPEC section 15) against real Redis, BullMQ and an
 * HTTP upstream: a customer's cards with their state, TTL source and last failure; the customer
 * search by id, email and external id; the live overview.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_ERROR_COMPONENTS } from '../../src/config/card-policy.js';
import { admin } from '../helpers/admin-client.js';
import { cardsReply } from '../helpers/fake-upstream.js';
import { cleanupProxies, eventually, ManualClock, postCards, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';

const TOKEN = 'console-admin-token';
const S = 1000;

afterEach(async () => {
  await cleanupProxies();
});

function consoleConfig(upstreamUrl: string) {
  return testConfig(upstreamUrl, {
    admin: { token: TOKEN },
    budgetMs: 3000,
    cards: {
      alpha: { upstream: 'legacy', ttlSeconds: 600, staleSeconds: 100 },
      beta: { upstream: 'legacy', scope: 'thread', staleSeconds: 60 },
      gamma: { upstream: 'legacy', placeholder: [{ componentText: { text: 'Loading gamma…' } }] },
    },
  });
}

const request = (keys: string[], thread: string | null = null) => ({
  cardKeys: keys,
  customer: { id: 'c_console', email: 'Ada@Example.com', externalId: 'ext-42' },
  thread: thread === null ? null : { id: thread, externalId: null },
});

describe('GET /admin/customers/:customerId/cards', () => {
  it('describes every configured card: state, components, times, TTL source, last failure', async () => {
    const clock = new ManualClock(Date.parse('2026-12-01T10:00:00.000Z'));
    // alpha gets the config TTL (no TTL from upstream), beta the upstream's 120 s.
    const upstream = await startTestUpstream((call) => ({ body: cardsReply(call, { ttl: call.keys.includes('beta') ? 120 : null }) }));
    const proxy = await startTestProxy(consoleConfig(upstream.url), 'start', { clock });
    expect((await postCards(proxy, request(['alpha']))).body.cards[0].components).toEqual([{ componentText: { text: 'alpha for c_console' } }]);
    expect((await postCards(proxy, request(['beta'], 'th_1'))).status).toBe(200);

    const url = '/admin/customers/c_console/cards?workspaceId=w_test';
    let res = await admin(proxy, 'GET', url);
    expect(res.status).toBe(200);
    expect(res.body.customer).toEqual({ workspaceId: 'w_test', customerId: 'c_console', email: 'Ada@Example.com', externalId: 'ext-42' });
    expect(res.body.cards).toEqual([
      {
        key: 'alpha',
        scope: 'customer',
        threadId: null,
        state: 'fresh',
        components: [{ componentText: { text: 'alpha for c_console' } }],
        fetchedAt: '2026-12-01T10:00:00.000Z',
        expiresAt: '2026-12-01T10:10:00.000Z',
        ttlSource: 'config',
        lastFailure: null,
        ttlSeconds: 600,
        upstream: 'legacy',
        invalidatedAt: null,
        staleUntil: '2026-12-01T10:11:40.000Z',
      },
      expect.objectContaining({ key: 'beta', scope: 'thread', threadId: 'th_1', state: 'fresh', ttlSource: 'upstream', expiresAt: '2026-12-01T10:02:00.000Z' }),
      // Not cached: what Plain would get while it loads.
      expect.objectContaining({ key: 'gamma', scope: 'customer', threadId: null, state: 'missing', components: [{ componentText: { text: 'Loading gamma…' } }], fetchedAt: null, expiresAt: null, ttlSource: null }),
    ]);

    // A run-time override: the next load of alpha takes it.
    expect((await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 30 } })).status).toBe(200);
    clock.advance(601 * S);
    expect((await postCards(proxy, request(['alpha', 'gamma']))).status).toBe(200);
    await eventually(async () => (await admin(proxy, 'GET', url)).body.cards[0].fetchedAt === '2026-12-01T10:10:01.000Z', 5000, 'alpha reloaded');
    res = await admin(proxy, 'GET', url);
    expect(res.body.cards[0]).toMatchObject({ state: 'fresh', ttlSource: 'override', ttlSeconds: 30, expiresAt: '2026-12-01T10:10:31.000Z' });

    // A failed refresh: alpha is stale (served stale-if-error) and shows the failure and its class.
    upstream.setHandler(() => ({ status: 404, body: { error: 'gone' } }));
    clock.advance(31 * S);
    expect((await postCards(proxy, { ...request(['alpha', 'gamma']), customer: { id: 'c_console', email: null, externalId: null } })).status).toBe(200);
    await eventually(async () => (await admin(proxy, 'GET', url)).body.cards[0].lastFailure !== null, 5000, 'alpha failure recorded');
    res = await admin(proxy, 'GET', url);
    expect(res.body.cards[0]).toMatchObject({
      key: 'alpha',
      state: 'stale',
      lastFailure: { errorKind: 'integration', status: 404, failedAt: '2026-12-01T10:10:32.000Z', detail: expect.stringContaining('404') },
    });
    expect(res.body.cards[2]).toMatchObject({ key: 'gamma', state: 'fresh' });

    // Invalidation marks a fresh card stale at once.
    expect((await admin(proxy, 'POST', '/admin/invalidate', { body: { customerId: 'c_console', cardKeys: ['gamma'] } })).body).toEqual({ invalidated: 1 });
    res = await admin(proxy, 'GET', url);
    expect(res.body.cards[2]).toMatchObject({ key: 'gamma', state: 'stale', invalidatedAt: '2026-12-01T10:10:32.000Z', expiresAt: '2026-12-01T10:10:32.000Z' });
  });

  it('shows a card that never loaded as error, with the error components Plain gets', async () => {
    const upstream = await startTestUpstream(() => ({ status: 400, body: { error: 'bad' } }));
    const proxy = await startTestProxy(consoleConfig(upstream.url));
    expect((await postCards(proxy, request(['gamma']))).status).toBe(200);
    const res = await admin(proxy, 'GET', '/admin/customers/c_console/cards?workspaceId=w_test');
    const gamma = res.body.cards.find((c: { key: string }) => c.key === 'gamma');
    expect(gamma).toMatchObject({ state: 'error', fetchedAt: null, ttlSource: null, lastFailure: { errorKind: 'integration', status: 400 } });
    expect(gamma.components).toEqual(DEFAULT_ERROR_COMPONENTS);
    expect(Date.parse(gamma.expiresAt) - Date.parse(gamma.lastFailure.failedAt)).toBe(300 * S);
  });

  it('answers 400 without a workspaceId, 401 without the token, and an unknown customer with missing cards', async () => {
    const proxy = await startTestProxy(consoleConfig('http://127.0.0.1:9/cards'));
    expect(await admin(proxy, 'GET', '/admin/customers/c_x/cards')).toMatchObject({ status: 400, body: { error: 'invalid_request', message: expect.stringContaining('workspaceId') } });
    expect((await admin(proxy, 'GET', '/admin/customers/c_x/cards?workspaceId=w', { token: 'wrong' })).status).toBe(401);
    const res = await admin(proxy, 'GET', '/admin/customers/c_x/cards?workspaceId=w');
    expect(res.status).toBe(200);
    expect(res.body.cards.map((c: { key: string; state: string }) => `${c.key}:${c.state}`)).toEqual(['alpha:missing', 'beta:missing', 'gamma:missing']);
  });
});

describe('GET /admin/customers (search)', () => {
  it('finds a customer by id, email (any case) and external id through the look-up index', async () => {
    const upstream = await startTestUpstream();
    const proxy = await startTestProxy(consoleConfig(upstream.url));
    expect((await postCards(proxy, request(['alpha']))).status).toBe(200);
    const expected = { customers: [{ workspaceId: 'w_test', customerId: 'c_console', email: 'Ada@Example.com', externalId: 'ext-42' }] };
    for (const query of ['customerId=c_console', 'email=ada%40example.com', 'externalId=ext-42', 'email=Ada%40Example.com&workspaceId=w_test']) {
      expect((await admin(proxy, 'GET', `/admin/customers?${query}`)).body, query).toEqual(expected);
    }
    expect((await admin(proxy, 'GET', '/admin/customers?externalId=ext-42&workspaceId=other')).body).toEqual({ customers: [] });
    expect((await admin(proxy, 'GET', '/admin/customers?email=nobody%40example.com')).body).toEqual({ customers: [] });
    expect((await admin(proxy, 'GET', '/admin/customers')).body).toEqual({ error: 'invalid_request', message: expect.stringContaining('exactly one of customerId, email or externalId') });
    expect((await admin(proxy, 'GET', '/admin/customers?email=a&externalId=b')).status).toBe(400);
  });
});

describe('GET /admin/overview', () => {
  it('sums this process\'s metrics: requests, look-ups, served sources, queues, upstream calls', async () => {
    const upstream = await startTestUpstream((call) => (call.keys.includes('gamma') ? { status: 503 } : { body: cardsReply(call) }));
    const proxy = await startTestProxy({ ...consoleConfig(upstream.url), upstreams: { legacy: { ...consoleConfig(upstream.url).upstreams.legacy!, retries: 0 } } });
    expect((await postCards(proxy, request(['alpha']))).status).toBe(200);
    expect((await postCards(proxy, request(['alpha']))).status).toBe(200); // a manual reload
    expect((await postCards(proxy, request(['alpha', 'gamma']))).status).toBe(200);
    const res = await admin(proxy, 'GET', '/admin/overview');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      requests: 3,
      lookups: { miss: 2, reload: 1, fresh: 1 },
      served: { refreshed: 2, cache: 1, error: 1 },
      budgetExhausted: 0,
      unknownCardKeys: 0,
      queues: [{ upstream: 'legacy', waiting: 0, active: 0, delayed: 0, failed: expect.any(Number) }],
      upstreams: [{ upstream: 'legacy', calls: 3, errors: 1, totalSeconds: expect.any(Number), p95Seconds: expect.any(Number) }],
    });
    expect(Date.parse(res.body.at)).not.toBeNaN();
  });
});

describe('GET /console', () => {
  it('answers 404 when no admin token is configured', async () => {
    const proxy = await startTestProxy(testConfig('http://127.0.0.1:9/cards'));
    for (const url of ['/console', '/console/', '/console/main.js']) expect((await proxy.app.inject({ url })).statusCode, url).toBe(404);
  });

  it('serves the built page and modules without the token, under a CSP that allows only this origin', async () => {
    const proxy = await startTestProxy(consoleConfig('http://127.0.0.1:9/cards'));
    const page = await proxy.app.inject({ url: '/console' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('<script type="module" src="/console/main.js"></script>');
    for (const [url, type] of [['/console/main.js', 'text/javascript; charset=utf-8'], ['/console/console.css', 'text/css; charset=utf-8']] as const) {
      const res = await proxy.app.inject({ url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type'], url).toBe(type);
      expect(res.body, url).not.toContain(TOKEN);
    }
    expect(page.body).not.toContain(TOKEN);
    for (const url of ['/console/..%2Fcli.js', '/console/%2E%2E%2Fhttp%2Fapp.js', '/console/nope.js', '/console/index.json']) {
      expect((await proxy.app.inject({ url })).statusCode, url).toBe(404);
    }
  });
});
