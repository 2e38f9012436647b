/**
 * SPEC section 12 end to end: a listening cardproxy with `listen.tls`, certificates made at test
 * time (a server CA, a "Plain" client CA and a foreign one), real TLS clients (node:https), and
 * the plain-HTTP ops port. Client certificates `require`d (refused in the handshake), `request`ed
 * (answered 403 and logged) and `off`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cardsBody, cleanupProxies, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';
import { makeCa, makeLeaf, type CertFiles } from '../helpers/test-certs.js';
import { tlsRequest } from '../helpers/tls-client.js';
import type { ClientCertificateMode } from '../../src/config/schema.js';

let dir: string;
let serverCa: CertFiles;
let server: CertFiles;
let plainCa: CertFiles;
let plainClient: CertFiles;
let foreignClient: CertFiles;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardproxy-tls-'));
  serverCa = makeCa(dir, 'server');
  server = makeLeaf(dir, serverCa, 'cardproxy', 'server');
  plainCa = makeCa(dir, 'plain');
  plainClient = makeLeaf(dir, plainCa, 'plain-client', 'client');
  const foreignCa = makeCa(dir, 'foreign');
  foreignClient = makeLeaf(dir, foreignCa, 'foreign-client', 'client');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(cleanupProxies);

async function startTlsProxy(clientCertificate: ClientCertificateMode, withOpsPort = false): Promise<TestProxy> {
  const upstream = await startTestUpstream();
  const config = testConfig(upstream.url, {
    listen: {
      host: '127.0.0.1',
      port: 0,
      opsPort: withOpsPort ? 0 : null,
      tls: { certFile: server.certFile, keyFile: server.keyFile, clientCertificate, clientCaFiles: clientCertificate === 'off' ? [] : [plainCa.certFile] },
    },
  });
  return startTestProxy(config, 'start', { listen: true });
}

describe('listen.tls with clientCertificate "require"', () => {
  it('serves every route to a client with a certificate from a configured CA', async () => {
    const proxy = await startTlsProxy('require');
    expect(proxy.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const cards = await tlsRequest(proxy.url!, '/cards', { client: plainClient, ca: serverCa.cert, body: cardsBody(['alpha']) });
    expect(cards.status).toBe(200);
    expect(cards.body.cards.map((c: { key: string }) => c.key)).toEqual(['alpha']);
    expect(cards.serverFingerprint).toBe(server.fingerprint256);
    expect((await tlsRequest(proxy.url!, '/healthz', { client: plainClient, ca: serverCa.cert })).status).toBe(200);
  });

  it('refuses in the handshake a client without a certificate or with one of a foreign CA, on every route', async () => {
    const proxy = await startTlsProxy('require');
    for (const path of ['/cards', '/healthz', '/metrics']) {
      await expect(tlsRequest(proxy.url!, path, { ca: serverCa.cert, body: path === '/cards' ? cardsBody(['alpha']) : undefined })).rejects.toThrow();
      await expect(tlsRequest(proxy.url!, path, { client: foreignClient, ca: serverCa.cert })).rejects.toThrow();
    }
    // The server itself stays fine.
    expect((await tlsRequest(proxy.url!, '/healthz', { client: plainClient, ca: serverCa.cert })).status).toBe(200);
  });

  it('answers /healthz, /readyz and /metrics on the plain-HTTP ops port, and nothing else there', async () => {
    const proxy = await startTlsProxy('require', true);
    expect(proxy.opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${proxy.opsUrl}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${proxy.opsUrl}/readyz`)).json()).toEqual({ status: 'ready', redis: 'up' });
    const metrics = await fetch(`${proxy.opsUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('cardproxy_http_request_duration_seconds');
    const cards = await fetch(`${proxy.opsUrl}/cards`, { method: 'POST', body: '{}' });
    expect(cards.status).toBe(404);
    expect(((await cards.json()) as { error: string }).error).toBe('not_found');
  });
});

describe('listen.tls with clientCertificate "request"', () => {
  it('answers 403 client_certificate_required without a valid certificate, on every route, and logs it', async () => {
    const proxy = await startTlsProxy('request');
    const none = await tlsRequest(proxy.url!, '/cards', { ca: serverCa.cert, body: cardsBody(['alpha']) });
    expect(none.status).toBe(403);
    expect(none.body).toEqual({ error: 'client_certificate_required', message: 'a client certificate signed by a configured CA is required' });
    const foreign = await tlsRequest(proxy.url!, '/healthz', { client: foreignClient, ca: serverCa.cert });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error).toBe('client_certificate_required');
    const lines = proxy.logs.find('request rejected');
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => [l.route, l.status, l.error])).toEqual([
      ['/cards', 403, 'client_certificate_required'],
      ['/healthz', 403, 'client_certificate_required'],
    ]);
    expect(lines[0]!.level).toBe(40);
    expect(typeof lines[1]!.tlsAuthorizationError).toBe('string');

    const good = await tlsRequest(proxy.url!, '/cards', { client: plainClient, ca: serverCa.cert, body: cardsBody(['alpha']) });
    expect(good.status).toBe(200);
  });
});

describe('listen.tls with clientCertificate "off"', () => {
  it('serves TLS clients with and without a certificate', async () => {
    const proxy = await startTlsProxy('off');
    expect((await tlsRequest(proxy.url!, '/cards', { ca: serverCa.cert, body: cardsBody(['alpha']) })).status).toBe(200);
    expect((await tlsRequest(proxy.url!, '/healthz', { client: foreignClient, ca: serverCa.cert })).status).toBe(200);
  });
});
