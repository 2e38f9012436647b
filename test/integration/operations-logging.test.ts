/**
 * What an operator finds in the logs: one warn line per rejected request (no body, no secret),
 * bounded per second; and why a refresh failed, also when only some cards of a call failed.
 */
import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, ManualClock, postCards, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';

afterEach(cleanupProxies);

const SECRET = 'operations-logging-secret';
const sign = (body: string) => createHmac('sha256', SECRET).update(body).digest('hex');

describe('rejected requests', () => {
  it('log one warn line each, with the code and without body or secret, at most 20 a second', async () => {
    const legacy = await startTestUpstream();
    const clock = new ManualClock();
    const proxy = await startTestProxy(testConfig(legacy.url, { plain: { signingSecrets: [SECRET] } }), 'start', { clock });
    const body = JSON.stringify(cardsBody(['alpha'], 'c_private_body'));

    expect((await postCards(proxy, body, { 'plain-request-signature': 'bad' })).status).toBe(401);
    expect((await postCards(proxy, '{', { 'plain-request-signature': sign('{') })).status).toBe(400);
    const big = JSON.stringify({ pad: 'x'.repeat(1_100_000) });
    expect((await postCards(proxy, big, { 'plain-request-signature': sign(big) })).status).toBe(413);
    expect((await postCards(proxy, body, { 'plain-request-signature': sign(body) })).status).toBe(200);

    const lines = proxy.logs.find('request rejected');
    expect(lines.map((l) => [l.level, l.status, l.error, l.route, l.method])).toEqual([
      [40, 401, 'invalid_signature', '/cards', 'POST'],
      [40, 400, 'invalid_json', '/cards', 'POST'],
      [40, 413, 'payload_too_large', '/cards', 'POST'],
    ]);
    expect(lines[0]!.contentLength).toBe(Buffer.byteLength(body));
    expect(JSON.stringify(lines)).not.toContain('c_private_body');
    expect(proxy.logs.raw.join('\n')).not.toContain(SECRET);

    // A flood: 20 lines in a second, then the next line says how many were left out.
    for (let i = 0; i < 30; i++) await postCards(proxy, body, { 'plain-request-signature': 'bad' });
    expect(proxy.logs.find('request rejected')).toHaveLength(20);
    clock.advance(1000);
    await postCards(proxy, body, { 'plain-request-signature': 'bad' });
    const after = proxy.logs.find('request rejected');
    expect(after).toHaveLength(21);
    expect(after[20]!.droppedBefore).toBe(13);
  });
});

describe('refresh failures', () => {
  it('name the reason in the log line, for a failed call and for cards missing from an answer', async () => {
    const legacy = await startTestUpstream((call) => {
      if (call.customerId === 'c_404') return { status: 404 };
      return { body: cardsReply(call.keys.filter((k) => k !== 'beta')) };
    });
    const proxy = await startTestProxy(testConfig(legacy.url));

    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_partial'));
    const partial = (await eventually(() => proxy.logs.find('refresh job failed for some cards')[0], 5000, 'partial failure line'))!;
    expect(partial.level).toBe(40);
    expect(partial.failures).toEqual([{ cardKey: 'beta', errorKind: 'integration', detail: expect.stringMatching(/missing/) }]);

    await postCards(proxy, cardsBody(['alpha'], 'c_404'));
    const failed = (await eventually(() => proxy.logs.find('refresh job failed')[0], 5000, 'failure line'))!;
    expect(failed).toMatchObject({ level: 40, errorKind: 'integration', status: 404 });
    expect(String(failed.detail)).toContain('404');
  });
});
