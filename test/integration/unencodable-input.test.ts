/**
 * Text that cannot be encoded (a lone UTF-16 surrogate, which JSON can carry as "\ud800") and
 * oversized identifiers are refused with 400 where they enter: /cards and the admin API. Before,
 * they answered 500 (URI encoding of a Redis key threw) or reached a worker and broke its job.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { admin } from '../helpers/admin-client.js';
import { cardsBody, cleanupProxies, postCards, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';

afterEach(async () => {
  await cleanupProxies();
});

/** `"\ud800"` as JSON text: the escape survives JSON.stringify only when written by hand. */
const LONE = '\\ud800';

function withLoneSurrogate(path: string): string {
  const body = cardsBody(['alpha'], 'c_1', { thread: { id: 'th_1', externalId: null }, tenant: { id: 'te_1', externalId: null } }) as any;
  const parts = path.split('.');
  let at = body;
  for (const part of parts.slice(0, -1)) at = at[part];
  at[parts.at(-1)!] = 'MARK';
  return JSON.stringify(body).replace('"MARK"', `"x${LONE}y"`);
}

async function queuedJobs(proxy: TestProxy): Promise<number> {
  const depth = await (proxy.metrics.refreshJobs.get());
  return depth.values.reduce((n, v) => n + v.value, 0);
}

describe('unencodable and oversized identifiers', () => {
  it.each(['customer.id', 'customer.email', 'customer.externalId', 'thread.id', 'thread.externalId', 'tenant.id', 'tenant.externalId'])(
    '/cards answers 400 naming %s when it holds a lone surrogate; nothing is called or queued',
    async (field) => {
      const legacy = await startTestUpstream();
      const proxy = await startTestProxy(testConfig(legacy.url));
      const res = await postCards(proxy, withLoneSurrogate(field));
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
      expect(res.body.message).toContain(field);
      expect(res.body.message).toContain('unpaired UTF-16 surrogate');
      expect(legacy.calls).toHaveLength(0);
      expect(await queuedJobs(proxy)).toBe(0);
    },
  );

  it('/cards answers 400 to identifiers over their length limit, and accepts them at the limit', async () => {
    const legacy = await startTestUpstream();
    const proxy = await startTestProxy(testConfig(legacy.url));
    const huge = await postCards(proxy, { cardKeys: ['alpha'], customer: { id: 'c'.repeat(900_000), email: null, externalId: null } });
    expect(huge.status).toBe(400);
    expect(huge.body.message).toContain('customer.id: must be at most 500 characters');
    const email = await postCards(proxy, { cardKeys: ['alpha'], customer: { id: 'c_1', email: `${'e'.repeat(310)}@example.com`, externalId: null } });
    expect(email.status).toBe(400);
    expect(email.body.message).toContain('customer.email: must be at most 320 characters');
    expect(legacy.calls).toHaveLength(0);
    const atLimit = await postCards(proxy, { cardKeys: ['alpha'], customer: { id: 'c'.repeat(500), email: `${'e'.repeat(308)}@example.com`, externalId: 'x'.repeat(500) } });
    expect(atLimit.status).toBe(200);
  });

  it.each(['customerId', 'email', 'externalId', 'workspaceId', 'reason'])('POST /admin/invalidate answers 400 naming %s when it holds a lone surrogate', async (field) => {
    const legacy = await startTestUpstream();
    const proxy = await startTestProxy(testConfig(legacy.url, { admin: { token: 'admin-secret' } }));
    const body = field === 'customerId' || field === 'email' || field === 'externalId' ? { [field]: 'MARK' } : { customerId: 'c_1', [field]: 'MARK' };
    const res = await admin(proxy, 'POST', '/admin/invalidate', { body: JSON.stringify(body).replace('"MARK"', `"x${LONE}"`) });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.message).toContain(field);
    expect(res.body.message).toContain('unpaired UTF-16 surrogate');
  });

  it('admin routes answer 4xx, not 500, to an undecodable card key in the path or an oversized query', async () => {
    const legacy = await startTestUpstream();
    const proxy = await startTestProxy(testConfig(legacy.url, { admin: { token: 'admin-secret' } }));
    const put = await admin(proxy, 'PUT', '/admin/cards/%ED%A0%80/ttl', { body: { ttlSeconds: 5 } });
    expect(put.status).toBe(400);
    const del = await admin(proxy, 'DELETE', '/admin/cards/%ED%A0%80/ttl');
    expect(del.status).toBe(400);
    const events = await admin(proxy, 'GET', `/admin/events?customerId=${'c'.repeat(501)}`);
    expect(events.status).toBe(400);
    expect(events.body.message).toContain('customerId: must be at most 500 characters');
    // Path parameters are bounded by Fastify itself (maxParamLength 100).
    const cards = await admin(proxy, 'GET', `/admin/customers/${'c'.repeat(501)}/cards?workspaceId=w_test`);
    expect(cards.status).toBe(414);
    const warm = await admin(proxy, 'POST', '/admin/warm', { body: `{"workspaceId":"w_test","customers":[{"id":"c${LONE}"}]}` });
    expect(warm.status).toBe(400);
    expect(warm.body.message).toContain('customers[0].id: must be valid Unicode text');
  });
});
