/**
 * The HTTP surface against the real app (`inject`), real Redis and a real fake upstream: SPEC 2.1
 * (request and response shapes), 2.3 (signing), 7 (/cards, /healthz, /readyz, /metrics) and 9
 * (bad input, check order, error bodies, no leaked secrets).
 */
import { createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cardsReply, startFakeUpstream, textOf, type FakeUpstream } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, startTestProxy, testConfig, type TestProxy } from '../helpers/harness.js';

const MiB = 1_048_576;
const sign = (secret: string, raw: string | Buffer): string => createHmac('sha256', secret).update(raw).digest('hex');

interface Sent {
  status: number;
  headers: Record<string, unknown>;
  text: string;
  body: any;
}

/**
 * One request through the real app. Defaults: `POST /cards`, JSON content type and a workspace id;
 * a header given as `undefined` is left out.
 */
async function send(
  proxy: TestProxy,
  opts: { payload?: string | Buffer; headers?: Record<string, string | undefined>; method?: 'GET' | 'POST'; url?: string } = {},
): Promise<Sent> {
  const merged: Record<string, string | undefined> = { 'content-type': 'application/json', 'plain-workspace-id': 'w_test', ...opts.headers };
  const headers = Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => e[1] !== undefined));
  const method = opts.method ?? 'POST';
  const res = await proxy.app.inject({
    method,
    url: opts.url ?? '/cards',
    headers,
    ...(method === 'POST' ? { payload: opts.payload ?? '' } : {}),
  });
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    body = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text: res.body, body };
}

/** A signed `/cards` request: the signature is over exactly the bytes sent. */
function signed(secret: string, raw: string, headers: Record<string, string | undefined> = {}) {
  return { payload: raw, headers: { 'plain-request-signature': sign(secret, raw), ...headers } };
}

/** The answer is `status` with a JSON `{error, message}` body; `mentions` must appear in the message. */
function expectError(res: Sent, status: number, ...mentions: string[]): void {
  expect(res.status, res.text).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  expect(res.body).toEqual({ error: expect.any(String), message: expect.any(String) });
  expect(res.body.error.length).toBeGreaterThan(0);
  expect(res.body.message.length).toBeGreaterThan(0);
  for (const m of mentions) expect(res.body.message).toContain(m);
}

const json = (v: unknown) => JSON.stringify(v);
const cardKeys = (res: Sent) => (res.body.cards as Array<{ key: string }>).map((c) => c.key);

let legacy: FakeUpstream;
beforeAll(async () => {
  legacy = await startFakeUpstream();
});
afterAll(async () => {
  await cleanupProxies();
  await legacy.close();
});

describe('bad input without signing secrets (SPEC 9)', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy(testConfig(legacy.url));
  });
  afterAll(cleanupProxies);

  it.each([
    ['not JSON', '{"cardKeys": ['],
    ['plain text', 'hello'],
    ['empty', ''],
    // JSON is UTF-8 (RFC 8259): these bytes must not become a customer id full of U+FFFD.
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"cardKeys":["alpha"],"customer":{"id":"c_'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}')])],
  ])('answers 400 to a body that is not JSON (%s)', async (_name, payload) => {
    expectError(await send(proxy, { payload }), 400);
  });

  it.each([
    ['an array', '[]'],
    ['an array of a request', json([cardsBody(['alpha'])])],
    ['a number', '42'],
    ['a string', '"cards"'],
    ['null', 'null'],
    ['true', 'true'],
  ])('answers 400 to JSON that is not an object (%s)', async (_name, payload) => {
    expectError(await send(proxy, { payload }), 400);
  });

  it('answers 400 naming customer.id when it is missing, empty or not a string', async () => {
    expectError(await send(proxy, { payload: json({ cardKeys: ['alpha'], customer: { email: 'x@example.com', externalId: null } }) }), 400, 'customer.id');
    expectError(await send(proxy, { payload: json({ cardKeys: ['alpha'], customer: { id: '' } }) }), 400, 'customer.id');
    expectError(await send(proxy, { payload: json({ cardKeys: ['alpha'], customer: { id: 42 } }) }), 400, 'customer.id');
    expectError(await send(proxy, { payload: json({ cardKeys: ['alpha'] }) }), 400, 'customer');
  });

  it('answers 400 naming cardKeys when they are not 1-25 valid keys', async () => {
    const customer = { id: 'c_1', email: null, externalId: null };
    const cases: unknown[] = [
      [], // empty
      Array.from({ length: 26 }, (_, i) => `k${i}`), // too many
      ['alpha', 'bad key'], // space
      ['al.pha'], // dot
      ['ünïcode'],
      [''], // empty key
      ['a'.repeat(501)], // too long
      ['alpha', 7], // not a string
      'alpha', // not an array
    ];
    for (const keys of cases) {
      const res = await send(proxy, { payload: json({ cardKeys: keys, customer }) });
      expectError(res, 400, 'cardKeys');
    }
    expectError(await send(proxy, { payload: json({ customer }) }), 400, 'cardKeys');
    expect(legacy.calls.filter((c) => c.customerId === 'c_1')).toHaveLength(0);
  });

  it('accepts the boundaries: 25 keys, and a key of exactly 500 characters', async () => {
    const customer = { id: 'c_bounds', email: null, externalId: null };
    const many = await send(proxy, { payload: json({ cardKeys: ['alpha', ...Array.from({ length: 24 }, (_, i) => `Unknown_key-${i}`)], customer }) });
    expect(many.status, many.text).toBe(200);
    expect(cardKeys(many)).toEqual(['alpha']);
    const long = await send(proxy, { payload: json({ cardKeys: ['a'.repeat(500)], customer }) });
    expect(long.status, long.text).toBe(200);
    expect(long.body).toEqual({ cards: [] });
  });

  it('answers 400 when Plain-Workspace-Id is missing or empty', async () => {
    const payload = json(cardsBody(['alpha']));
    expectError(await send(proxy, { payload, headers: { 'plain-workspace-id': undefined } }), 400, 'Plain-Workspace-Id');
    expectError(await send(proxy, { payload, headers: { 'plain-workspace-id': '' } }), 400, 'Plain-Workspace-Id');
  });

  it('answers 413 to a body over 1 MiB, and accepts one of exactly 1 MiB', async () => {
    expectError(await send(proxy, { payload: 'x'.repeat(MiB + 1) }), 413);
    const base = json({ ...cardsBody(['alpha'], 'c_big'), pad: '' });
    const padded = json({ ...cardsBody(['alpha'], 'c_big'), pad: 'p'.repeat(MiB - Buffer.byteLength(base)) });
    expect(Buffer.byteLength(padded)).toBe(MiB);
    const atLimit = await send(proxy, { payload: padded });
    expect(atLimit.status, atLimit.text.slice(0, 200)).toBe(200);
    expect(cardKeys(atLimit)).toEqual(['alpha']);
    const over = json({ ...cardsBody(['alpha'], 'c_big'), pad: 'p'.repeat(MiB - Buffer.byteLength(base) + 1) });
    expectError(await send(proxy, { payload: over }), 413);
  });

  it('still answers normally after a run of bad requests', async () => {
    await Promise.all([send(proxy, { payload: 'x'.repeat(MiB + 10) }), send(proxy, { payload: '{' }), send(proxy, { payload: 'null' })]);
    const ok = await send(proxy, { payload: json(cardsBody(['alpha'], 'c_after')) });
    expect(ok.status).toBe(200);
    expect(textOf(ok.body.cards[0])).toBe('alpha for c_after');
  });
});

describe('request signing (SPEC 2.3) and the order of checks (SPEC 9)', () => {
  const secret = 's3cret-plain';
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy(testConfig(legacy.url, { plain: { signingSecrets: [secret] } }));
  });
  afterAll(cleanupProxies);

  it('accepts a request signed over the raw body, in lower or upper case hex', async () => {
    const raw = json(cardsBody(['alpha'], 'c_signed'));
    const res = await send(proxy, signed(secret, raw));
    expect(res.status, res.text).toBe(200);
    expect(textOf(res.body.cards[0])).toBe('alpha for c_signed');
    const upper = await send(proxy, { payload: raw, headers: { 'plain-request-signature': sign(secret, raw).toUpperCase() } });
    expect(upper.status, upper.text).toBe(200);
  });

  it('verifies the bytes as received: a pretty-printed body signed as sent is accepted', async () => {
    const raw = JSON.stringify(cardsBody(['alpha'], 'c_pretty'), null, 2);
    const res = await send(proxy, signed(secret, raw));
    expect(res.status, res.text).toBe(200);
  });

  it('rejects a signature over a re-serialised body instead of the raw bytes', async () => {
    const body = cardsBody(['alpha'], 'c_reser');
    const raw = JSON.stringify(body, null, 2);
    expectError(await send(proxy, { payload: raw, headers: { 'plain-request-signature': sign(secret, JSON.stringify(body)) } }), 401);
    const compact = JSON.stringify(body);
    expectError(await send(proxy, { payload: compact, headers: { 'plain-request-signature': sign(secret, JSON.stringify(body, null, 2)) } }), 401);
  });

  it('answers 401 to a missing, malformed, wrong-secret or other-body signature', async () => {
    const raw = json(cardsBody(['alpha'], 'c_bad_sig'));
    const bad = [
      undefined,
      '',
      'not-hex',
      sign(secret, raw).slice(0, 63),
      `${sign(secret, raw)}00`,
      `sha256=${sign(secret, raw)}`,
      sign('another-secret', raw),
      sign(secret, `${raw} `),
    ];
    for (const sig of bad) expectError(await send(proxy, { payload: raw, headers: { 'plain-request-signature': sig } }), 401);
    expect(legacy.calls.filter((c) => c.customerId === 'c_bad_sig')).toHaveLength(0);
  });

  it('does not parse an unsigned body: invalid JSON, a non-object and a schema violation all get 401, not 400', async () => {
    for (const payload of ['{"cardKeys": [', 'null', json({ cardKeys: [], customer: {} })]) {
      expectError(await send(proxy, { payload }), 401);
    }
    // Signed, the same bodies are parsed and rejected as bad input.
    for (const payload of ['{"cardKeys": [', 'null', json({ cardKeys: [], customer: {} })]) {
      expectError(await send(proxy, signed(secret, payload)), 400);
    }
  });

  it('checks the signature before the workspace id: unsigned without Plain-Workspace-Id is 401, signed is 400', async () => {
    const raw = json(cardsBody(['alpha']));
    expectError(await send(proxy, { payload: raw, headers: { 'plain-workspace-id': undefined } }), 401);
    expectError(await send(proxy, signed(secret, raw, { 'plain-workspace-id': undefined })), 400, 'Plain-Workspace-Id');
  });

  it('checks the size before the signature: a body over 1 MiB is 413, signed or not', async () => {
    const big = json({ ...cardsBody(['alpha']), pad: 'p'.repeat(MiB) });
    expectError(await send(proxy, { payload: big }), 413);
    expectError(await send(proxy, { payload: big, headers: { 'plain-request-signature': 'deadbeef' } }), 413);
    expectError(await send(proxy, signed(secret, big)), 413);
  });

  it('does not warn about missing signing secrets when one is configured', () => {
    expect(proxy.logs.lines.filter((l) => /signingSecrets/i.test(String(l.msg)))).toEqual([]);
  });
});

describe('secret rotation and running without secrets', () => {
  afterEach(cleanupProxies);

  it('accepts a signature by any configured secret, so a secret can be rotated', async () => {
    const proxy = await startTestProxy(testConfig(legacy.url, { plain: { signingSecrets: ['old-secret', 'new-secret'] } }));
    const raw = json(cardsBody(['alpha'], 'c_rotate'));
    expect((await send(proxy, signed('new-secret', raw))).status).toBe(200);
    expect((await send(proxy, signed('old-secret', raw))).status).toBe(200);
    expectError(await send(proxy, signed('third-secret', raw)), 401);
  });

  it('with no secret configured, warns at start naming the signing secrets and accepts unsigned requests', async () => {
    const proxy = await startTestProxy(testConfig(legacy.url, { plain: { signingSecrets: [] } }));
    const warnings = proxy.logs.lines.filter((l) => l.level === 40 && /signingSecrets/.test(String(l.msg)));
    expect(warnings, proxy.logs.raw.join('\n')).toHaveLength(1);
    const res = await send(proxy, { payload: json(cardsBody(['alpha'], 'c_unsigned')) });
    expect(res.status, res.text).toBe(200);
    // A garbage signature is ignored too when no secret is configured.
    const garbage = await send(proxy, { payload: json(cardsBody(['alpha'], 'c_unsigned')), headers: { 'plain-request-signature': 'nope' } });
    expect(garbage.status).toBe(200);
  });
});

describe("Plain's request and response shapes (SPEC 2.1)", () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy(testConfig(legacy.url));
  });
  afterAll(cleanupProxies);

  it.each([
    ['thread null, email null, externalId absent', { cardKeys: ['alpha'], customer: { id: 'c_s1', email: null }, thread: null }],
    ['everything absent but customer.id', { cardKeys: ['alpha'], customer: { id: 'c_s2' } }],
    [
      "Langfuse's logged body: tenant, thread and timestamp",
      {
        cardKeys: ['alpha'],
        customer: { id: 'c_01JRJH726J9AFRBP5MQ5VTVAXH', externalId: null, email: 'demo@langfuse.com' },
        tenant: { id: 'te_01JVWYPQJ69AHE35R97NRAYM6H', externalId: 'cloud_DEV_org_seed-org-id' },
        thread: { id: 'th_01JVX0PDD7YXYHG66EWYFB2PAE', externalId: null },
        timestamp: '2025-05-23T13:09:39.820Z',
      },
    ],
    [
      'tenant null, thread without externalId, unknown fields at every level',
      {
        cardKeys: ['alpha'],
        customer: { id: 'c_s4', email: 'a@example.com', externalId: 'ext-4', futureField: 1 },
        thread: { id: 'th_4', whatever: true },
        tenant: null,
        timestamp: 1716469779,
        somethingNew: { nested: [1, 2] },
      },
    ],
  ])('accepts %s', async (_name, body) => {
    const res = await send(proxy, { payload: json(body) });
    expect(res.status, res.text).toBe(200);
    expect(cardKeys(res)).toEqual(['alpha']);
    expect(textOf(res.body.cards[0])).toBe(`alpha for ${(body.customer as { id: string }).id}`);
  });

  it('answers one card per key when cardKeys holds duplicates', async () => {
    const res = await send(proxy, { payload: json(cardsBody(['alpha', 'beta', 'alpha', 'beta', 'alpha'], 'c_dup')) });
    expect(res.status, res.text).toBe(200);
    expect(cardKeys(res).sort()).toEqual(['alpha', 'beta']);
    const calls = legacy.calls.filter((c) => c.customerId === 'c_dup');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.keys.sort()).toEqual(['alpha', 'beta']);
  });

  it('answers {cards:[{key, timeToLiveSeconds, components}]} as JSON', async () => {
    const res = await send(proxy, { payload: json(cardsBody(['alpha', 'beta'], 'c_shape')) });
    expect(res.status).toBe(200);
    expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
    expect(Object.keys(res.body)).toEqual(['cards']);
    expect(res.body.cards).toHaveLength(2);
    for (const card of res.body.cards) {
      expect(Object.keys(card).sort()).toEqual(['components', 'key', 'timeToLiveSeconds']);
      expect(Number.isInteger(card.timeToLiveSeconds) && card.timeToLiveSeconds >= 0).toBe(true);
      expect(card.components === null || Array.isArray(card.components)).toBe(true);
    }
    expect(res.body.cards.find((c: { key: string }) => c.key === 'beta').components).toEqual([{ componentText: { text: 'beta for c_shape' } }]);
  });

  it('answers 404 with a JSON error body to an unknown route, and 404/405 to GET /cards', async () => {
    expectError(await send(proxy, { method: 'GET', url: '/nope' }), 404);
    expectError(await send(proxy, { method: 'POST', url: '/card', payload: json(cardsBody(['alpha'])) }), 404);
    const get = await send(proxy, { method: 'GET', url: '/cards' });
    expect([404, 405]).toContain(get.status);
    expectError(get, get.status);
  });
});

describe('/healthz, /readyz and /metrics (SPEC 7, 8)', () => {
  afterEach(cleanupProxies);

  it('answers /healthz and /readyz 200 with Redis up', async () => {
    const proxy = await startTestProxy(testConfig(legacy.url));
    expect((await send(proxy, { method: 'GET', url: '/healthz' })).status).toBe(200);
    const ready = await send(proxy, { method: 'GET', url: '/readyz' });
    expect(ready.status, ready.text).toBe(200);
  });

  it('records /cards requests, accepted and rejected, under route="/cards", with a bucket exactly on the budget', async () => {
    const proxy = await startTestProxy(testConfig(legacy.url, { budgetMs: 1250 }));
    expect((await send(proxy, { payload: json(cardsBody(['alpha'], 'c_metrics')) })).status).toBe(200);
    expect((await send(proxy, { payload: '{' })).status).toBe(400);
    expect((await send(proxy, { payload: 'x'.repeat(MiB + 1) })).status).toBe(413);

    const res = await proxy.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const buckets = res.body.split('\n').filter((l) => l.startsWith('cardproxy_http_request_duration_seconds_bucket{'));
    const bucket = (status: string, le: string) =>
      buckets.find((l) => l.includes('route="/cards"') && l.includes('method="POST"') && l.includes(`status_code="${status}"`) && l.includes(`le="${le}"`));
    for (const status of ['200', '400', '413']) {
      const line = bucket(status, '+Inf');
      expect(line, `no +Inf bucket for status ${status} in:\n${buckets.join('\n')}`).toBeDefined();
      expect(Number(line!.split(' ').pop())).toBe(1);
    }
    // The budget boundary exists exactly: 1250 ms is 1.25 s, not a default bucket.
    expect(bucket('200', '1.25'), buckets.join('\n')).toBeDefined();
    expect(res.body).toContain('# TYPE cardproxy_http_request_duration_seconds histogram');
  });

  it('uses le="1" for a budget of 1000 ms', async () => {
    const proxy = await startTestProxy(testConfig(legacy.url, { budgetMs: 1000 }));
    await send(proxy, { payload: json(cardsBody(['alpha'], 'c_metrics_1')) });
    const text = (await proxy.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/^cardproxy_http_request_duration_seconds_bucket\{(?=[^}]*le="1")(?=[^}]*route="\/cards")[^}]*\} 1$/m);
  });
});

describe('no secret leaks, and one log line per answered request (SPEC 9)', () => {
  afterEach(cleanupProxies);

  it('keeps configured secrets out of logs and answers, and logs each answer once without the email', async () => {
    const secrets = ['s3cret-plain', 'adm1n-token', 'up-secret', 'up-signing'];
    const config = testConfig(legacy.url, {
      plain: { signingSecrets: ['s3cret-plain'] },
      admin: { token: 'adm1n-token' },
      upstreams: {
        legacy: {
          url: legacy.url,
          timeoutMs: 5000,
          concurrency: 4,
          retries: 0,
          retryDelayMs: 50,
          headers: { Authorization: 'Bearer up-secret' },
          signingSecret: 'up-signing',
        },
      },
    });
    legacy.setHandler((call) => (call.customerId === 'c_leak_fail' ? { hangUp: true } : { body: cardsReply(call) }));
    try {
      const proxy = await startTestProxy(config);
      const bodies: string[] = [];
      const go = async (opts: Parameters<typeof send>[1]) => {
        const res = await send(proxy, opts);
        bodies.push(res.text);
        return res;
      };
      const ok1 = json(cardsBody(['alpha', 'beta'], 'c_leak_1'));
      const ok2 = json({ ...cardsBody(['alpha', 'nope'], 'c_leak_2'), thread: { id: 'th_leak', externalId: null } });
      const failing = json(cardsBody(['alpha'], 'c_leak_fail'));

      // Good requests, one of them with Plain's static Authorization header carrying a secret.
      expect((await go(signed('s3cret-plain', ok1, { authorization: 'Bearer adm1n-token' }))).status).toBe(200);
      expect((await go(signed('s3cret-plain', ok2))).status).toBe(200);
      expect((await go(signed('s3cret-plain', failing))).status).toBe(200);
      // Bad ones.
      expectError(await go({ payload: ok1 }), 401);
      expectError(await go(signed('up-signing', ok1)), 401);
      expectError(await go({ payload: ok1, headers: { 'plain-request-signature': 's3cret-plain' } }), 401);
      expectError(await go(signed('s3cret-plain', '{"cardKeys": [')), 400);
      expectError(await go(signed('s3cret-plain', json({ cardKeys: ['bad key'], customer: { id: 'c' } }))), 400);
      expectError(await go({ payload: 'x'.repeat(MiB + 1) }), 413);
      bodies.push((await proxy.app.inject({ method: 'GET', url: '/metrics' })).body);
      bodies.push((await proxy.app.inject({ method: 'GET', url: '/readyz' })).body);
      bodies.push((await proxy.app.inject({ method: 'GET', url: '/healthz' })).body);

      // The upstream really got the secrets (so they were in play), and the failing refresh was logged.
      const upCall = legacy.calls.find((c) => c.customerId === 'c_leak_1')!;
      expect(upCall.headers.authorization).toBe('Bearer up-secret');
      expect(upCall.headers['plain-request-signature']).toBe(sign('up-signing', upCall.rawBody));
      await eventually(() => proxy.logs.find('refresh job failed').some((l) => l.customerId === 'c_leak_fail'), 3000, 'failed refresh log');

      const logText = proxy.logs.raw.join('\n');
      const answers = bodies.join('\n');
      for (const s of secrets) {
        expect(logText, `secret ${s} in the logs`).not.toContain(s);
        expect(answers, `secret ${s} in an answer`).not.toContain(s);
      }

      const answered = proxy.logs.find('cards answered');
      expect(answered).toHaveLength(3);
      const first = answered.find((l) => l.customerId === 'c_leak_1')!;
      expect(first).toMatchObject({ workspaceId: 'w_test', customerId: 'c_leak_1' });
      const outcomes = first.keys as Array<{ key: string; result: string; source: string | null }>;
      expect(outcomes.map((o) => o.key).sort()).toEqual(['alpha', 'beta']);
      for (const o of outcomes) expect(o.result).toBe('miss');
      const second = answered.find((l) => l.customerId === 'c_leak_2')!;
      expect((second.keys as Array<{ key: string; result: string }>).map((o) => [o.key, o.result]).sort()).toEqual([
        ['alpha', 'miss'],
        ['nope', 'unknown'],
      ]);
      for (const line of answered) expect(JSON.stringify(line)).not.toMatch(/@example\.com/);
      expect(logText).not.toContain('@example.com');
    } finally {
      legacy.setHandler((call) => ({ body: cardsReply(call) }));
    }
  });
});

describe('a worker-only process (SPEC 4)', () => {
  afterEach(cleanupProxies);

  it('answers no /cards but does answer /healthz, /readyz and /metrics', async () => {
    const worker = await startTestProxy(testConfig(legacy.url), 'worker');
    expectError(await send(worker, { payload: json(cardsBody(['alpha'], 'c_worker')) }), 404);
    expect((await send(worker, { method: 'GET', url: '/healthz' })).status).toBe(200);
    expect((await send(worker, { method: 'GET', url: '/readyz' })).status).toBe(200);
    const metrics = await worker.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('cardproxy_http_request_duration_seconds');
    expect(legacy.calls.filter((c) => c.customerId === 'c_worker')).toHaveLength(0);
  });
});
