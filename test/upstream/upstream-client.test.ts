/**
 * The card API client's transport (node:http) against real servers: what it sends, keep-alive,
 * time-outs before and during the answer, refused connections, redirects not followed, a caller's
 * cancel. The answers' contents are tested end to end in test/integration/upstream-answers.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { verifySignature } from '../../src/core/signature.js';
import { callUpstream, type UpstreamCall, type UpstreamTarget } from '../../src/upstream/upstream-client.js';
import { VERSION } from '../../src/version.js';
import { freePort } from '../helpers/free-port.js';
import { makeCa, makeLeaf } from '../helpers/test-certs.js';

const CALL: UpstreamCall = { workspaceId: 'w_1', cardKeys: ['alpha'], customer: { id: 'c_1', email: 'a@example.com' } };
const CARDS = JSON.stringify({ cards: [{ key: 'alpha', timeToLiveSeconds: 60, components: [{ componentText: { text: 'hi' } }] }] });

interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

const servers: Server[] = [];

/** A server answering every request with `answer`; counts requests and TCP connections. */
async function serve(answer: (res: ServerResponse) => void, tls?: { cert: Buffer; key: Buffer }) {
  const received: Received[] = [];
  let connections = 0;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      answer(res);
    });
  };
  const server = tls ? createTlsServer(tls, listener) : createServer(listener);
  server.on('connection', () => connections++);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/cards`;
  return { url, received, connections: () => connections };
}

const target = (url: string, extra: Partial<UpstreamTarget> = {}): UpstreamTarget => ({ name: 'legacy', url, headers: {}, timeoutMs: 2000, signingSecret: null, ...extra });

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe('callUpstream', () => {
  it('POSTs the customer context with its headers, signed, and reads the cards', async () => {
    const upstream = await serve((res) => res.writeHead(200, { 'content-type': 'application/json' }).end(CARDS));
    const result = await callUpstream(target(upstream.url, { headers: { 'X-Api-Key': 'k' }, signingSecret: 'shh' }), CALL);
    expect(result.ok).toBe(true);
    expect(result.ok && [...result.cards.keys()]).toEqual(['alpha']);
    const [{ headers, body }] = upstream.received as [Received];
    expect(JSON.parse(body)).toEqual({ cardKeys: ['alpha'], customer: { id: 'c_1', email: 'a@example.com', externalId: null }, thread: null, tenant: null });
    expect(headers).toMatchObject({
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      accept: 'application/json',
      'plain-workspace-id': 'w_1',
      'user-agent': `cardproxy/${VERSION}`,
      'x-api-key': 'k',
    });
    expect(verifySignature(['shh'], Buffer.from(body), headers['plain-request-signature'] as string)).toBe(true);
  });

  it('keeps the connection for the next call', async () => {
    const upstream = await serve((res) => res.writeHead(200).end(CARDS));
    for (let i = 0; i < 3; i++) expect((await callUpstream(target(upstream.url), CALL)).ok).toBe(true);
    expect(upstream.received).toHaveLength(3);
    expect(upstream.connections()).toBe(1);
  });

  it.each([
    ['no answer at all', (_res: ServerResponse) => {}],
    ['a head and half a body', (res: ServerResponse) => res.writeHead(200, { 'content-length': String(CARDS.length) }).write(CARDS.slice(0, 10))],
  ])('gives up after timeoutMs on %s: a retriable failure without status', async (_name, answer) => {
    const upstream = await serve(answer);
    const result = await callUpstream(target(upstream.url, { timeoutMs: 200 }), CALL);
    expect(result).toMatchObject({ ok: false, failure: { kind: 'retriable', detail: 'upstream did not answer within 200 ms', status: null } });
    expect(result.durationMs).toBeGreaterThanOrEqual(190);
    expect(result.durationMs).toBeLessThan(1500);
  });

  it('waits for a legacy API slower than the idle time of a kept connection (5 s)', async () => {
    const upstream = await serve((res) => setTimeout(() => res.writeHead(200).end(CARDS), 5500));
    const result = await callUpstream(target(upstream.url, { timeoutMs: 10_000 }), CALL);
    expect(result.ok).toBe(true);
    expect(result.durationMs).toBeGreaterThanOrEqual(5500);
  }, 15_000);

  it('names a refused connection by its code', async () => {
    const result = await callUpstream(target(`http://127.0.0.1:${await freePort()}/cards`), CALL);
    expect(result).toMatchObject({ ok: false, failure: { kind: 'retriable', detail: 'upstream request failed: ECONNREFUSED', status: null } });
  });

  it('does not follow a redirect: the 3xx is the answer, an integration error', async () => {
    const elsewhere = await serve((res) => res.writeHead(200).end(CARDS));
    const upstream = await serve((res) => res.writeHead(302, { location: elsewhere.url }).end());
    const result = await callUpstream(target(upstream.url), CALL);
    expect(result).toMatchObject({ ok: false, failure: { kind: 'integration', detail: 'upstream answered HTTP 302', status: 302 } });
    expect(elsewhere.received).toHaveLength(0);
  });

  it('answers a 503 as retriable with its status, and the next call still gets through', async () => {
    let status = 503;
    const upstream = await serve((res) => res.writeHead(status).end(status === 200 ? CARDS : 'busy'));
    expect(await callUpstream(target(upstream.url), CALL)).toMatchObject({ ok: false, failure: { kind: 'retriable', detail: 'upstream answered HTTP 503', status: 503 } });
    status = 200;
    expect((await callUpstream(target(upstream.url), CALL)).ok).toBe(true);
  });

  it("stops at the caller's signal, as a failure that is not a time-out", async () => {
    const upstream = await serve(() => {});
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(), 100);
    const result = await callUpstream(target(upstream.url, { timeoutMs: 5000 }), CALL, cancel.signal);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.failure.kind).toBe('retriable');
    expect(!result.ok && result.failure.detail).toMatch(/^upstream request failed: .*abort/i);
    expect(result.durationMs).toBeLessThan(1500);
  });

  it('calls an https upstream, verifying its certificate against the trusted CAs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cardproxy-upstream-tls-'));
    try {
      const ca = makeCa(dir, 'legacy');
      const upstream = await serve((res) => res.writeHead(200).end(CARDS), makeLeaf(dir, ca, 'legacy-api', 'server'));
      // Not trusted by this process: refused before anything is sent.
      const refused = await callUpstream(target(upstream.url), CALL);
      expect(refused).toMatchObject({ ok: false, failure: { kind: 'retriable', status: null } });
      expect(!refused.ok && refused.failure.detail).toMatch(/^upstream request failed: .*certificate/);
      expect(upstream.received).toHaveLength(0);
      // Trusted (NODE_EXTRA_CA_CERTS, read at start): the built client in a process of its own.
      const client = new URL('../../dist/upstream/upstream-client.js', import.meta.url).href;
      const script = `const { callUpstream } = await import(${JSON.stringify(client)}); const r = await callUpstream(${JSON.stringify(target(upstream.url))}, ${JSON.stringify(CALL)}); console.log(JSON.stringify({ ok: r.ok, keys: r.ok ? [...r.cards.keys()] : r.failure }));`;
      // Asynchronously: the upstream answers from this process.
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.certFile }, encoding: 'utf8' });
      expect(JSON.parse(stdout)).toEqual({ ok: true, keys: ['alpha'] });
      expect(upstream.received).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
