/**
 * The lean path of `POST /cards` (src/http/lean-cards.ts): over a real socket, a request is
 * answered as the Fastify route answers it (`inject` goes through the route): the same status,
 * headers, bytes, request id sequence, log lines and metrics, on plain HTTP and on HTTPS; and the
 * requests it leaves to Fastify (chunked, over the limit, query strings, no content type) are.
 */
import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cardsBody, cleanupProxies, eventually, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { parsePromText, sampleSum } from '../helpers/prom-text.js';
import { makeCa, makeLeaf } from '../helpers/test-certs.js';
import { tlsRequest } from '../helpers/tls-client.js';

const SECRET = 'lean-path-secret';
const sign = (raw: string | Buffer): string => createHmac('sha256', SECRET).update(raw).digest('hex');

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** Only what both paths must agree on (Node adds `date`, `connection`, `keep-alive` to socket answers). */
function comparable(a: Answer) {
  return { status: a.status, contentType: a.headers['content-type'], cache: a.headers['cardproxy-cache'], text: a.text };
}

async function overSocket(
  url: string,
  opts: { path?: string; headers?: Record<string, string>; body?: string | Buffer; chunked?: boolean },
): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, method: 'POST', path: opts.path ?? '/cards', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (opts.chunked) {
      const body = Buffer.from(opts.body ?? '');
      req.write(body.subarray(0, 10));
      req.end(body.subarray(10));
    } else {
      req.end(opts.body);
    }
  });
}

async function viaInject(proxy: TestProxy, opts: { path?: string; headers?: Record<string, string>; body?: string | Buffer }): Promise<Answer> {
  const res = await proxy.app.inject({ method: 'POST', url: opts.path ?? '/cards', headers: opts.headers ?? {}, payload: opts.body ?? '' });
  return { status: res.statusCode, headers: res.headers as Answer['headers'], text: res.body };
}

function signedRequest(keys: string[], customerId = 'c_lean', extraHeaders: Record<string, string> = {}) {
  const body = JSON.stringify(cardsBody(keys, customerId));
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'plain-workspace-id': 'w_lean',
      'plain-request-signature': sign(body),
      ...extraHeaders,
    },
  };
}

async function scrape(proxy: TestProxy) {
  return parsePromText((await proxy.app.inject({ method: 'GET', url: '/metrics' })).body);
}

describe('POST /cards over a socket (the lean path) and through the Fastify route', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    const upstream = await startTestUpstream();
    proxy = await startTestProxy(testConfig(upstream.url, { plain: { signingSecrets: [SECRET] } }), 'start', { listen: true });
  });
  afterAll(cleanupProxies);

  it('answers a warm multi-key request from the near cache with the same bytes and headers as the route', async () => {
    const req = signedRequest(['alpha', 'beta']);
    const first = await overSocket(proxy.url!, req); // a miss: the lean path waits for the refresh
    expect(first.status, first.text).toBe(200);
    expect(first.headers['cardproxy-cache']).toBe('alpha=refreshed; beta=refreshed');
    // Once the refresh's changes have passed through the feed, both cards are near-cache hits.
    const hits = async () => sampleSum(await scrape(proxy), 'cardproxy_near_cache_lookups_total', { result: 'hit' });
    let sent = 1;
    await eventually(async () => {
      const before = await hits();
      await overSocket(proxy.url!, req);
      sent++;
      return (await hits()) - before === 2;
    }, 5000, 'two near-cache hits per request');
    const hitsBefore = await hits();
    const socket = await overSocket(proxy.url!, req);
    const route = await viaInject(proxy, req);
    expect((await hits()) - hitsBefore).toBe(4);
    expect(comparable(socket)).toEqual(comparable(route));
    expect(socket.headers['cardproxy-cache']).toBe('alpha=fresh; beta=fresh');
    expect(socket.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(socket.headers['content-length'])).toBe(Buffer.byteLength(socket.text));
    expect(JSON.parse(socket.text).cards.map((c: { key: string }) => c.key)).toEqual(['alpha', 'beta']);

    // One request id sequence for both paths, one "cards answered" line per request.
    const lines = proxy.logs.find('cards answered').filter((l) => l.workspaceId === 'w_lean');
    expect(lines).toHaveLength(sent + 2);
    expect(new Set(lines.map((l) => l.reqId)).size).toBe(sent + 2);
    expect(lines.every((l) => /^req-[0-9a-z]+$/.test(String(l.reqId)))).toBe(true);
  });

  it('refuses bad requests with the same status, error body and rejected-request line as the route', async () => {
    const good = signedRequest(['alpha'], 'c_bad');
    const cases: Array<{ name: string; headers: Record<string, string>; body: string; status: number; error: string }> = [
      { name: 'bad signature', headers: { ...good.headers, 'plain-request-signature': 'ab'.repeat(32) }, body: good.body, status: 401, error: 'invalid_signature' },
      { name: 'no workspace', headers: { ...withoutHeader(good.headers, 'plain-workspace-id') }, body: good.body, status: 400, error: 'missing_workspace_id' },
      { name: 'not JSON', headers: { ...good.headers, 'content-length': '5', 'plain-request-signature': sign('{oops') }, body: '{oops', status: 400, error: 'invalid_json' },
      { name: 'not the schema', headers: { ...good.headers, 'content-length': '2', 'plain-request-signature': sign('{}') }, body: '{}', status: 400, error: 'invalid_request' },
    ];
    for (const c of cases) {
      const before = proxy.logs.find('request rejected').length;
      const socket = await overSocket(proxy.url!, { headers: c.headers, body: c.body });
      const route = await viaInject(proxy, { headers: c.headers, body: c.body });
      expect(comparable(socket), c.name).toEqual(comparable(route));
      expect(socket.status, c.name).toBe(c.status);
      expect(JSON.parse(socket.text).error, c.name).toBe(c.error);
      const rejected = proxy.logs.find('request rejected').slice(before);
      expect(rejected, c.name).toHaveLength(2);
      const [a, b] = rejected.map(({ time: _t, reqId: _r, remoteAddress: _ra, ...rest }) => rest);
      expect(a, c.name).toEqual(b);
      expect(a, c.name).toMatchObject({ status: c.status, error: c.error, method: 'POST', route: '/cards', contentLength: Number(c.headers['content-length']) });
      expect(rejected[0]!.remoteAddress).toBe('127.0.0.1');
    }
  });

  it('counts its requests in the same HTTP metrics as the route', async () => {
    const count = async (status: string) => sampleSum(await scrape(proxy), 'cardproxy_http_request_duration_seconds_count', { route: '/cards', method: 'POST', status_code: status });
    const ok = signedRequest(['alpha', 'beta'], 'c_metrics');
    const [ok0, bad0] = [await count('200'), await count('401')];
    await overSocket(proxy.url!, ok);
    await overSocket(proxy.url!, ok);
    await overSocket(proxy.url!, { headers: { ...ok.headers, 'plain-request-signature': 'cd'.repeat(32) }, body: ok.body });
    expect(await count('200')).toBe(ok0 + 2);
    expect(await count('401')).toBe(bad0 + 1);
  });

  it('reads the headers it needs whatever their case, and answers repeated ones as the route does', async () => {
    const req = signedRequest(['alpha', 'beta'], 'c_case');
    const line = (name: string, value: string) => `${name}: ${value}`;
    const capitalized = [
      line('Content-Type', 'application/json'),
      line('Content-Length', req.headers['content-length']),
      line('Plain-Workspace-Id', 'w_lean'),
      line('PLAIN-REQUEST-SIGNATURE', req.headers['plain-request-signature']),
    ];
    const answered = await rawExchange(proxy.url!, capitalized, req.body);
    expect(answered.status, answered.text).toBe(200);
    expect(answered.head).toMatch(/\r\ncardproxy-cache: alpha=\w+; beta=\w+\r\n/i);
    // Node joins a repeated custom header into one value ("a, b"): neither is a signature or a workspace id.
    const repeated = async (extra: string) => rawExchange(proxy.url!, [...capitalized, extra], req.body);
    const twoSignatures = await repeated(line('plain-request-signature', req.headers['plain-request-signature']));
    expect([twoSignatures.status, JSON.parse(twoSignatures.text).error]).toEqual([401, 'invalid_signature']);
    const twoWorkspaces = await repeated(line('plain-workspace-id', 'w_lean'));
    expect([twoWorkspaces.status, JSON.parse(twoWorkspaces.text).error]).toEqual([400, 'missing_workspace_id']);
    // A repeated Content-Type: Node keeps the first, the route answers.
    expect((await repeated(line('content-type', 'text/plain'))).status).toBe(200);
  });

  it('leaves to Fastify what it does not take, with today\'s answers', async () => {
    const req = signedRequest(['alpha', 'beta'], 'c_left');
    // Chunked, and a query string: answered by the route.
    expect((await overSocket(proxy.url!, { headers: withoutHeader(req.headers, 'content-length'), body: req.body, chunked: true })).status).toBe(200);
    expect((await overSocket(proxy.url!, { ...req, path: '/cards?x=1' })).status).toBe(200);
    // Over the limit: 413 before the body is read.
    const big = await overSocket(proxy.url!, { headers: { ...req.headers, 'content-length': String(1_048_577) }, body: Buffer.alloc(0) });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.text).error).toBe('payload_too_large');
    // No content type: as the route answers it.
    const bare = { headers: withoutHeader(req.headers, 'content-type'), body: req.body };
    expect(comparable(await overSocket(proxy.url!, bare))).toEqual(comparable(await viaInject(proxy, bare)));
  });
});

describe('answer memory used again (src/http/answer-memory.ts)', () => {
  afterAll(cleanupProxies);

  it('keeps the bytes of answers queued for a client that stopped reading while other clients\' answers reuse memory', async () => {
    // Cards of ~9 KB: a 2-card answer is ~18 KB, so 600 of them (11 MB) are more than the kernel
    // holds for a client that does not read, and the rest wait in the server's own buffers while
    // other connections' answers go through the answer slabs many times over.
    const padding = 'x'.repeat(9_000);
    const upstream = await startTestUpstream();
    upstream.setHandler((call) => ({ body: cardsReply(call, { ttl: 3600, text: (key, id) => `${key} for ${id} ${padding}` }) }));
    const proxy = await startTestProxy(testConfig(upstream.url, { plain: { signingSecrets: [SECRET] } }), 'start', { listen: true });
    const stalledReq = signedRequest(['alpha', 'beta'], 'c_stalled');
    const otherReq = signedRequest(['alpha', 'beta'], 'c_other');
    const hits = async () => sampleSum(await scrape(proxy), 'cardproxy_near_cache_lookups_total', { result: 'hit' });
    // Both customers warm and served from the near cache (answered at once, from answer memory).
    for (const req of [stalledReq, otherReq]) {
      await eventually(async () => {
        const before = await hits();
        expect((await overSocket(proxy.url!, req)).status).toBe(200);
        return (await hits()) - before === 2;
      }, 5000, 'near-cache hits');
    }

    const { port } = new URL(proxy.url!);
    const stalled = connect({ host: '127.0.0.1', port: Number(port) });
    stalled.pause();
    await new Promise<void>((resolve, reject) => stalled.once('connect', resolve).once('error', reject));
    const head = Object.entries(stalledReq.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    const pipelined = 600;
    stalled.write(`POST /cards HTTP/1.1\r\nhost: 127.0.0.1\r\n${head}\r\n${stalledReq.body}`.repeat(pipelined));

    // Meanwhile other clients' answers: 250 × 18 KB, about 17 slabs' worth.
    for (let i = 0; i < 25; i++) {
      const answers = await Promise.all(Array.from({ length: 10 }, () => overSocket(proxy.url!, otherReq)));
      for (const a of answers) expect(JSON.parse(a.text).cards.map(textOf)).toEqual([`alpha for c_other ${padding}`, `beta for c_other ${padding}`]);
    }

    // Now the stalled client reads: every answer whole and its own.
    const received: Buffer[] = [];
    let bytes = 0;
    const bodies = await new Promise<string[]>((resolve, reject) => {
      stalled.on('data', (chunk: Buffer) => {
        received.push(chunk);
        bytes += chunk.length;
        const parsed = splitResponses(Buffer.concat(received, bytes));
        if (parsed.length === pipelined) resolve(parsed);
      });
      stalled.once('error', reject);
      stalled.resume();
    });
    stalled.destroy();
    expect(bodies).toHaveLength(pipelined);
    const wrong = bodies.filter((b) => {
      const texts = JSON.parse(b).cards.map(textOf);
      return texts[0] !== `alpha for c_stalled ${padding}` || texts[1] !== `beta for c_stalled ${padding}`;
    });
    expect(wrong).toHaveLength(0);
  });
});

/** One request written as given (header names and repeats exactly as listed); its answer's status, head and body. */
async function rawExchange(url: string, headerLines: string[], body: string): Promise<{ status: number; head: string; text: string }> {
  const { port } = new URL(url);
  const socket = connect({ host: '127.0.0.1', port: Number(port) });
  const received: Buffer[] = [];
  try {
    return await new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.on('data', (chunk: Buffer) => {
        received.push(chunk);
        const data = Buffer.concat(received);
        const [text] = splitResponses(data);
        if (text === undefined) return;
        const head = data.subarray(0, data.indexOf('\r\n\r\n') + 2).toString('latin1');
        resolve({ status: Number(head.split(' ')[1]), head, text });
      });
      socket.write(`POST /cards HTTP/1.1\r\nHost: 127.0.0.1\r\n${headerLines.map((l) => `${l}\r\n`).join('')}\r\n${body}`);
    });
  } finally {
    socket.destroy();
  }
}

/** The bodies of the complete HTTP/1.1 responses (each with a Content-Length) at the start of `data`. */
function splitResponses(data: Buffer): string[] {
  const bodies: string[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end === -1) return bodies;
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(data.subarray(at, end).toString('latin1'))?.[1]);
    if (data.length < end + 4 + length) return bodies;
    bodies.push(data.subarray(end + 4, end + 4 + length).toString('utf8'));
    at = end + 4 + length;
  }
}

describe('the lean path on HTTPS', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cardproxy-lean-tls-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(cleanupProxies);

  it('answers warm hits to a client with an accepted certificate and refuses one without it (clientCertificate "request")', async () => {
    const serverCa = makeCa(dir, 'server');
    const server = makeLeaf(dir, serverCa, 'cardproxy', 'server');
    const plainCa = makeCa(dir, 'plain');
    const client = makeLeaf(dir, plainCa, 'plain-client', 'client');
    const upstream = await startTestUpstream();
    const config = testConfig(upstream.url, {
      listen: { host: '127.0.0.1', port: 0, tls: { certFile: server.certFile, keyFile: server.keyFile, clientCertificate: 'request', clientCaFiles: [plainCa.certFile] } },
    });
    const proxy = await startTestProxy(config, 'start', { listen: true });
    const body = cardsBody(['alpha', 'beta'], 'c_tls');
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await tlsRequest(proxy.url!, '/cards', { client, ca: serverCa.cert, body }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers[2]!.body.cards.map((c: { key: string }) => c.key)).toEqual(['alpha', 'beta']);
    const refused = await tlsRequest(proxy.url!, '/cards', { ca: serverCa.cert, body });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('client_certificate_required');
  });
});

function withoutHeader(headers: Record<string, string>, name: string): Record<string, string> {
  const { [name]: _dropped, ...rest } = headers;
  return rest;
}
