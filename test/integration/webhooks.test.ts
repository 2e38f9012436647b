/**
 * `POST /webhooks/plain` (SPEC 10.1) against real Redis, a real BullMQ worker and a real HTTP
 * upstream: the checks in order, de-duplication by delivery id, warming of both scopes with the
 * exact upstream body, fresh cards left alone, customer updates invalidating, and the metric.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { signBody } from '../../src/core/signature.js';
import { cardsReply } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, redisModes, startTestProxy, startTestUpstream, testConfig, type RedisMode, type TestProxy } from '../helpers/harness.js';

const SECRET = 'whsec-test';

afterEach(async () => {
  await cleanupProxies();
});

function envelope(type: string, payload: unknown, opts: { id?: string; deliveredAt?: string } = {}) {
  return {
    id: opts.id ?? `wh_${randomUUID()}`,
    type,
    timestamp: new Date().toISOString(),
    workspaceId: 'w_test',
    payload,
    webhookMetadata: {
      webhookTargetId: 'whTarget_1',
      webhookTargetVersion: '2024-09-18',
      webhookDeliveryAttemptId: 'whAttempt_1',
      webhookDeliveryAttemptNumber: 1,
      webhookDeliveryAttemptTimestamp: opts.deliveredAt ?? new Date().toISOString(),
    },
    someFutureField: { ignored: true },
  };
}

const threadPayload = (customerId: string, threadId = 'th_1') => ({
  thread: {
    id: threadId,
    externalId: 'ext-th',
    title: 'Refund please',
    customer: { id: customerId, email: { email: `${customerId}@example.com`, isVerified: true }, externalId: `ext-${customerId}`, fullName: 'Ada' },
    labels: [],
  },
});

async function deliver(proxy: TestProxy, body: unknown, opts: { secret?: string | null; raw?: string } = {}) {
  const payload = opts.raw ?? JSON.stringify(body);
  const secret = opts.secret === undefined ? SECRET : opts.secret;
  const res = await proxy.app.inject({
    method: 'POST',
    url: '/webhooks/plain',
    headers: { 'content-type': 'application/json', ...(secret === null ? {} : { 'plain-request-signature': signBody(secret, payload) }) },
    payload,
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

/** A `/cards` request signed like Plain signs it. */
function cards(proxy: TestProxy, body: unknown) {
  return postCards(proxy, body, { 'plain-request-signature': signBody(SECRET, JSON.stringify(body)) });
}

async function webhookCounts(proxy: TestProxy): Promise<Record<string, number>> {
  const values = (await proxy.metrics.webhooks.get()).values;
  return Object.fromEntries(values.filter((v) => v.value > 0).map((v) => [`${v.labels.type} ${v.labels.outcome}`, v.value]));
}

async function setup(cards: Record<string, unknown> = { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy', scope: 'thread' } }, mode: RedisMode = 'single') {
  const legacy = await startTestUpstream((call) => ({ body: cardsReply(call) }));
  const config = testConfig(legacy.url, { plain: { signingSecrets: [SECRET] }, budgetMs: 3000, cards }, mode);
  const proxy = await startTestProxy(config);
  return { legacy, proxy };
}

describe('POST /webhooks/plain: checks in order', () => {
  it('answers 413, 401, 400 and 401 stale_webhook, in that order, and counts them as rejected', async () => {
    const { legacy, proxy } = await setup();
    const big = JSON.stringify(envelope('thread.thread_created', { pad: 'x'.repeat(1_048_576) }));
    expect((await deliver(proxy, null, { raw: big, secret: 'wrong' })).status).toBe(413);
    const bad = await deliver(proxy, envelope('thread.thread_created', threadPayload('c_1')), { secret: 'wrong' });
    expect(bad).toEqual({ status: 401, body: { error: 'invalid_signature', message: expect.any(String) } });
    expect((await deliver(proxy, envelope('thread.thread_created', threadPayload('c_1')), { secret: null })).status).toBe(401);
    expect((await deliver(proxy, null, { raw: '{not json' })).body.error).toBe('invalid_json');
    expect((await deliver(proxy, null, { raw: '[1]' })).body.error).toBe('invalid_body');
    const noMetadata = await deliver(proxy, { ...envelope('thread.thread_created', threadPayload('c_1')), webhookMetadata: undefined });
    expect(noMetadata).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(String(noMetadata.body.message)).toContain('webhookMetadata');
    const stale = await deliver(proxy, envelope('thread.thread_created', threadPayload('c_1'), { deliveredAt: new Date(Date.now() - 301_000).toISOString() }));
    expect(stale).toEqual({ status: 401, body: { error: 'stale_webhook', message: expect.any(String) } });
    const future = await deliver(proxy, envelope('thread.thread_created', threadPayload('c_1'), { deliveredAt: new Date(Date.now() + 301_000).toISOString() }));
    expect(future.body.error).toBe('stale_webhook');

    expect(await webhookCounts(proxy)).toEqual({ 'other rejected': 5, 'thread.thread_created rejected': 3 });
    expect(legacy.calls).toHaveLength(0);
  });

  it('answers 200 and ignores event types it does not act on, without remembering them', async () => {
    const { legacy, proxy } = await setup();
    const res = await deliver(proxy, envelope('thread.note_created', threadPayload('c_1')));
    expect(res).toEqual({ status: 200, body: { outcome: 'ignored' } });
    expect((await deliver(proxy, envelope('timeline.brand_new_event_type', { anything: [1, 2] }))).body).toEqual({ outcome: 'ignored' });
    expect(await webhookCounts(proxy)).toEqual({ 'other ignored': 2 });
    expect(legacy.calls).toHaveLength(0);
  });
});

describe('POST /webhooks/plain: warming', () => {
  it.each(redisModes())('warms customer- and thread-scope cards with the body Plain would have sent, at once, and once per delivery id (%s Redis)', async (mode) => {
    const { legacy, proxy } = await setup(undefined, mode);
    legacy.setHandler((call) => ({ body: cardsReply(call), delayMs: 1500 })); // slower than the answer may be
    const delivery = envelope('thread.email_received', threadPayload('c_1'));
    const started = performance.now();
    expect(await deliver(proxy, delivery)).toEqual({ status: 200, body: { outcome: 'accepted' } });
    expect(performance.now() - started).toBeLessThan(1000);
    await legacy.waitForCalls(1);
    expect(legacy.calls[0]!.body).toEqual({
      cardKeys: ['alpha', 'beta'],
      customer: { id: 'c_1', email: 'c_1@example.com', externalId: 'ext-c_1' },
      thread: { id: 'th_1', externalId: 'ext-th' },
      tenant: null,
    });
    expect(legacy.calls[0]!.headers['plain-workspace-id']).toBe('w_test');

    // Plain delivers at least once: the same id again is answered 200 and not acted on.
    expect(await deliver(proxy, delivery)).toEqual({ status: 200, body: { outcome: 'duplicate' } });
    const refs = [
      { workspaceId: 'w_test', customerId: 'c_1', threadId: null, cardKey: 'alpha' },
      { workspaceId: 'w_test', customerId: 'c_1', threadId: 'th_1', cardKey: 'beta' },
    ];
    await eventually(async () => (await proxy.store.readStates(refs)).every((state) => state?.data), 5000, 'the warmed cards');
    // The agent's first look: real data from the cache, no upstream call.
    const first = await cards(proxy, cardsBody(['alpha', 'beta'], 'c_1', { thread: { id: 'th_1', externalId: null } }));
    expect(first.body.cards.map((c: { components: unknown }) => JSON.stringify(c.components))).toEqual([
      JSON.stringify([{ componentText: { text: 'alpha for c_1' } }]),
      JSON.stringify([{ componentText: { text: 'beta for c_1' } }]),
    ]);
    expect(legacy.calls).toHaveLength(1);
    expect(await webhookCounts(proxy)).toEqual({ 'thread.email_received accepted': 1, 'thread.email_received duplicate': 1 });
    const enqueued = (await proxy.metrics.refreshesEnqueued.get()).values.filter((v) => v.value > 0).map((v) => [v.labels.trigger, v.value]);
    expect(enqueued).toEqual([['warm', 2]]);

    // Fresh cards are left alone; a new thread warms only its thread-scope card.
    expect((await deliver(proxy, envelope('thread.chat_received', threadPayload('c_1')))).body).toEqual({ outcome: 'accepted' });
    expect((await deliver(proxy, envelope('thread.thread_created', threadPayload('c_1', 'th_2')))).body).toEqual({ outcome: 'accepted' });
    await legacy.waitForCalls(2);
    await eventually(() => proxy.logs.find('webhook acted on').length === 3, 5000, 'three deliveries acted on');
    expect(legacy.calls.map((c) => [c.keys, c.body.thread?.id])).toEqual([
      [['alpha', 'beta'], 'th_1'],
      [['beta'], 'th_2'],
    ]);
    expect(proxy.logs.find('webhook acted on').map((l) => l.queued)).toEqual([2, 0, 1]);
  });

  it('skips cards with warm: false', async () => {
    const { legacy, proxy } = await setup({ alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy', warm: false } });
    await deliver(proxy, envelope('thread.thread_created', threadPayload('c_9')));
    await legacy.waitForCalls(1);
    expect(legacy.calls[0]!.keys).toEqual(['alpha']);
  });

  it.each(redisModes())('invalidates an updated customer and indexes the new identifiers (%s Redis)', async (mode) => {
    const { legacy, proxy } = await setup({ alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy' } }, mode);
    // Two keys: a single-key request for a card answered moments ago would be a manual reload.
    await cards(proxy, cardsBody(['alpha', 'beta'], 'c_5'));
    await legacy.waitForCalls(1);
    const updated = envelope('customer.customer_updated', {
      customer: { id: 'c_5', email: { email: 'New@Example.com', isVerified: false }, externalId: 'ext-new' },
      previousCustomer: { id: 'c_5', email: { email: 'c_5@example.com', isVerified: true }, externalId: null },
    });
    expect((await deliver(proxy, updated)).body).toEqual({ outcome: 'accepted' });
    const ref = { workspaceId: 'w_test', customerId: 'c_5', threadId: null, cardKey: 'alpha' };
    await eventually(async () => typeof (await proxy.store.readStates([ref]))[0]?.invalidatedAt === 'number', 5000, 'the invalidation');
    const [state] = await proxy.store.readStates([ref]);
    expect([state?.customerEmail, state?.customerExternalId]).toEqual(['New@Example.com', 'ext-new']);
    expect(await proxy.store.findCustomers('email', 'new@example.com')).toEqual([{ workspaceId: 'w_test', customerId: 'c_5' }]);
    expect(await proxy.store.findCustomers('externalId', 'ext-new')).toEqual([{ workspaceId: 'w_test', customerId: 'c_5' }]);
    const reasons = (await proxy.redis.xrange(proxy.store.keys.eventStream(proxy.store.keys.shardOf('w_test', 'c_5')), '-', '+')).map(([, f]) => JSON.parse(f[3]!) as { reason?: string });
    expect(reasons.filter((d) => d.reason === 'webhook')).toHaveLength(2);
    // Served stale on the next load, and refreshed.
    expect((await cards(proxy, cardsBody(['alpha', 'beta'], 'c_5'))).body.cards.map((c: { timeToLiveSeconds: number }) => c.timeToLiveSeconds)).toEqual([15, 15]);
    await legacy.waitForCalls(2);
    expect(await webhookCounts(proxy)).toEqual({ 'customer.customer_updated accepted': 1 });
  });
});
