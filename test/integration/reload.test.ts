/**
 * SIGHUP on a real `cardproxy start` process (SPEC section 12 and issue "reload without restart"):
 * the certificate, key and client CA files are read again while a request is in flight on the old
 * ones; a file that cannot be used keeps the old ones. The configuration file is read again: a
 * card's TTL changes, an invalid file is refused with check-config's messages.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cardsBody, deleteByPrefix, eventually, redisUrl } from '../helpers/harness.js';
import { cardsReply, startFakeUpstream, textOf, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startCli, stopCliProcesses } from '../helpers/cli-process.js';
import { freePort } from '../helpers/free-port.js';
import { makeCa, makeLeaf, type CertFiles } from '../helpers/test-certs.js';
import { tlsRequest } from '../helpers/tls-client.js';
import { runCli } from '../helpers/run-cli.js';

let dir: string;
let upstream: FakeUpstream;
const prefixes: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cardproxy-reload-'));
  upstream = await startFakeUpstream();
});
afterEach(stopCliProcesses);
afterAll(async () => {
  await upstream.close();
  const redis = new Redis(redisUrl());
  for (const prefix of prefixes) await deleteByPrefix(redis, prefix);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
});

function install(from: CertFiles, certFile: string, keyFile: string): void {
  copyFileSync(from.certFile, certFile);
  copyFileSync(from.keyFile, keyFile);
}

describe('SIGHUP reloads the TLS files', () => {
  it('serves new connections with the new certificate and CA while a request in flight completes on the old one', async () => {
    const serverCaA = makeCa(dir, 'server-a');
    const serverCaB = makeCa(dir, 'server-b');
    const serverA = makeLeaf(dir, serverCaA, 'server-a-leaf', 'server');
    const serverB = makeLeaf(dir, serverCaB, 'server-b-leaf', 'server');
    const plainCa1 = makeCa(dir, 'plain-1');
    const plainCa2 = makeCa(dir, 'plain-2');
    const client1 = makeLeaf(dir, plainCa1, 'client-1', 'client');
    const client2 = makeLeaf(dir, plainCa2, 'client-2', 'client');
    const certFile = join(dir, 'tls.pem');
    const keyFile = join(dir, 'tls.key');
    const caFile = join(dir, 'clients-ca.pem');
    install(serverA, certFile, keyFile);
    copyFileSync(plainCa1.certFile, caFile);

    const port = await freePort();
    const keyPrefix = `test-reload-${randomUUID().slice(0, 8)}`;
    prefixes.push(keyPrefix);
    const configFile = join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        listen: { host: '127.0.0.1', port, tls: { certFile, keyFile, clientCertificate: 'require', clientCaFiles: [caFile] } },
        redis: { keyPrefix },
        budgetMs: 5000,
        upstreams: { legacy: { url: upstream.url, timeoutMs: 5000 } },
        cards: { alpha: { upstream: 'legacy' } },
      }),
    );
    const proc = startCli(['start', '--config', configFile], { REDIS_URL: redisUrl(), LOG_LEVEL: 'info' });
    await proc.waitForLine('cardproxy listening');
    const url = `https://127.0.0.1:${port}`;
    const ca = [serverCaA.cert, serverCaB.cert];

    // A request that waits 1.5 s for its upstream, on a connection made with the old files.
    upstream.setHandler((call) => ({ delayMs: 1500, body: cardsReply(call, { ttl: 60 }) }));
    const calls = upstream.calls.length;
    const inFlight = tlsRequest(url, '/cards', { client: client1, ca, body: cardsBody(['alpha'], 'c_reload') });
    await upstream.waitForCalls(calls + 1);

    install(serverB, certFile, keyFile);
    copyFileSync(plainCa2.certFile, caFile);
    proc.child.kill('SIGHUP');
    await proc.waitForLine('TLS certificate, key and CA files reloaded');

    const answered = await inFlight;
    expect(answered.status).toBe(200);
    expect(textOf(answered.body.cards[0])).toBe('alpha for c_reload');
    expect(answered.serverFingerprint).toBe(serverA.fingerprint256);

    const after = await tlsRequest(url, '/healthz', { client: client2, ca });
    expect(after).toMatchObject({ status: 200, serverFingerprint: serverB.fingerprint256 });
    // The old client CA is gone from the list: its clients are refused in the handshake.
    await expect(tlsRequest(url, '/healthz', { client: client1, ca })).rejects.toThrow();

    // A key file that cannot be used keeps the files in use, and says so.
    writeFileSync(keyFile, 'not a key\n');
    proc.child.kill('SIGHUP');
    const refused = await proc.waitForLine('TLS files not reloaded: keeping the ones in use');
    expect(refused.level).toBe(50);
    expect(await tlsRequest(url, '/healthz', { client: client2, ca })).toMatchObject({ status: 200, serverFingerprint: serverB.fingerprint256 });
    // An unreadable file too.
    rmSync(caFile);
    proc.child.kill('SIGHUP');
    const missing = await proc.waitForLine('TLS files not reloaded: keeping the ones in use', { skip: 1 });
    expect(JSON.stringify(missing.err)).toContain('ENOENT');
    await eventually(async () => (await tlsRequest(url, '/healthz', { client: client2, ca })).status === 200, 2000, 'still serving');
    expect(proc.child.exitCode).toBeNull();
  });
});

describe('SIGHUP reloads the configuration file', () => {
  it("applies a new TTL, and refuses an invalid file with check-config's messages", async () => {
    const port = await freePort();
    const keyPrefix = `test-reload-${randomUUID().slice(0, 8)}`;
    prefixes.push(keyPrefix);
    const configFile = join(dir, 'reload-config.json');
    const write = (ttlSeconds: unknown, upstreamName = 'legacy') =>
      writeFileSync(
        configFile,
        JSON.stringify({
          listen: { host: '127.0.0.1', port },
          redis: { keyPrefix },
          defaults: { refreshAhead: 0 },
          upstreams: { legacy: { url: upstream.url } },
          cards: { alpha: { upstream: upstreamName, ttlSeconds } },
        }),
      );
    write(100);
    upstream.setHandler((call) => ({ body: cardsReply(call) }));
    const proc = startCli(['start', '--config', configFile], { REDIS_URL: redisUrl() });
    await proc.waitForLine('cardproxy listening');
    const ttlFor = async (customerId: string) => {
      const res = await fetch(`http://127.0.0.1:${port}/cards`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_reload' },
        body: JSON.stringify(cardsBody(['alpha'], customerId)),
      });
      return ((await res.json()) as { cards: Array<{ timeToLiveSeconds: number }> }).cards[0]!.timeToLiveSeconds;
    };
    expect(await ttlFor('c_1')).toBe(100);

    write(7);
    proc.child.kill('SIGHUP');
    expect((await proc.waitForLine('configuration reloaded')).applied).toEqual(['cards']);
    expect(await ttlFor('c_2')).toBe(7);

    write(-1, 'nowhere');
    const checked = await runCli(['check-config', configFile]);
    expect(checked.code).toBe(2);
    proc.child.kill('SIGHUP');
    const refused = await proc.waitForLine('configuration not reloaded: keeping the one in use');
    const issues = refused.issues as string[];
    expect(issues).toHaveLength(2);
    for (const issue of issues) expect(checked.stderr).toContain(`  - ${issue}\n`);
    expect(await ttlFor('c_3')).toBe(7);
    expect(proc.child.exitCode).toBeNull();
  });
});
