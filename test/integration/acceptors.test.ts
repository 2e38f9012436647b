/**
 * `listen.acceptors`: several listening sockets on one port (SO_REUSEPORT), so that a burst of new
 * connections is accepted several per turn of the event loop instead of one (src/http/acceptors.ts).
 * The burst is made while this process's event loop is held: the kernel completes the handshakes
 * and queues the connections, and the test then counts how many the server took in each turn.
 */
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { reusePortSupported } from '../../src/http/acceptors.js';
import { cleanupProxies, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';

afterEach(cleanupProxies);

async function listeningProxy(acceptors: number): Promise<TestProxy> {
  const upstream = await startTestUpstream();
  return startTestProxy(testConfig(upstream.url, { listen: { host: '127.0.0.1', port: 0, acceptors } }), 'serve', { listen: true });
}

const portOf = (proxy: TestProxy): number => Number(new URL(proxy.url!).port);

/** Opens `count` connections while the event loop is held, then counts the server's accepts per turn. */
async function acceptsPerTurn(proxy: TestProxy, count: number): Promise<number[]> {
  const perTurn: number[] = [];
  let turn = 0;
  let ticking = true;
  const tick = () => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  const accepted = new Promise<void>((resolve) => {
    let seen = 0;
    proxy.app.server.on('connection', () => {
      perTurn[turn] = (perTurn[turn] ?? 0) + 1;
      if (++seen === count) resolve();
    });
  });
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) sockets.push(connect(portOf(proxy), '127.0.0.1').on('error', () => {}));
  // connect() has sent every SYN; the kernel completes the handshakes while this turn lasts.
  const until = performance.now() + 200;
  while (performance.now() < until) {
    // hold the event loop
  }
  setImmediate(tick);
  await accepted;
  ticking = false;
  for (const socket of sockets) socket.destroy();
  return perTurn.filter((n) => n !== undefined);
}

/** GET /healthz over a new connection each time (no agent). */
function healthOverNewConnection(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('reusePortSupported', () => {
  it('needs Node.js 22.12 or 23.1 and newer, on Linux or FreeBSD', () => {
    expect(reusePortSupported('20.20.2', 'linux')).toBe(false);
    expect(reusePortSupported('22.11.0', 'linux')).toBe(false);
    expect(reusePortSupported('22.12.0', 'linux')).toBe(true);
    expect(reusePortSupported('23.0.0', 'linux')).toBe(false);
    expect(reusePortSupported('23.1.0', 'freebsd')).toBe(true);
    expect(reusePortSupported('24.11.1', 'linux')).toBe(true);
    expect(reusePortSupported('24.11.1', 'darwin')).toBe(false);
    expect(reusePortSupported('24.11.1', 'win32')).toBe(false);
  });
});

describe('listen.acceptors', () => {
  it('with 1, accepts a burst of new connections one per turn of the event loop', async () => {
    const proxy = await listeningProxy(1);
    const perTurn = await acceptsPerTurn(proxy, 40);
    expect(perTurn.reduce((a, b) => a + b, 0)).toBe(40);
    expect(Math.max(...perTurn)).toBe(1);
    expect(proxy.logs.find('cardproxy listening')[0]!.acceptors).toBe(1);
  });

  it.skipIf(!reusePortSupported())('with 16, accepts such a burst several per turn, and serves every connection', async () => {
    const proxy = await listeningProxy(16);
    expect(proxy.logs.find('cardproxy listening')[0]!.acceptors).toBe(16);
    const perTurn = await acceptsPerTurn(proxy, 40);
    expect(perTurn.reduce((a, b) => a + b, 0)).toBe(40);
    // 40 connections spread by the kernel over 16 sockets: far fewer turns than connections.
    expect(Math.max(...perTurn)).toBeGreaterThanOrEqual(4);
    expect(perTurn.length).toBeLessThan(20);
    const statuses = await Promise.all(Array.from({ length: 48 }, () => healthOverNewConnection(portOf(proxy))));
    expect(statuses).toEqual(Array(48).fill(200));
  });

  it.skipIf(!reusePortSupported())('stops every socket listening on close', async () => {
    const proxy = await listeningProxy(16);
    const port = portOf(proxy);
    await proxy.close();
    const outcomes = await Promise.all(
      Array.from({ length: 32 }, () => healthOverNewConnection(port).then(String, (err: NodeJS.ErrnoException) => err.code ?? String(err))),
    );
    expect(outcomes).toEqual(Array(32).fill('ECONNREFUSED'));
  });

  it('refuses a value outside 1 to 64', async () => {
    const upstream = await startTestUpstream();
    expect(() => testConfig(upstream.url, { listen: { host: '127.0.0.1', port: 0, acceptors: 0 } })).toThrow(/listen\.acceptors/);
    expect(() => testConfig(upstream.url, { listen: { host: '127.0.0.1', port: 0, acceptors: 65 } })).toThrow(/listen\.acceptors/);
  });
});
