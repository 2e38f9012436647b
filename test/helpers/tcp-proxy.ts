/**
 * A TCP proxy in front of the real Redis, so that a test can take "Redis" away and bring it back
 * without owning the server:
 *
 * - `cut()`: every live connection is destroyed and the port stops listening, so new connects are
 *   refused (Redis crashed or was restarted);
 * - `blackhole()`: the port accepts connections but nothing is forwarded any more, in either
 *   direction, on new and live connections alike; sockets are held open silently (a network
 *   partition or a hung Redis: no error, no answer);
 * - `restore()`: listening and forwarding again, on the same port (held sockets are destroyed, so
 *   clients reconnect to a working proxy).
 *
 * ```ts
 * const tcp = await startTcpProxy({ host: '127.0.0.1', port: 6379 });
 * const config = testConfig(upstream.url, { redis: { url: tcp.url(redisUrl()), keyPrefix } });
 * await tcp.cut();
 * await tcp.restore();
 * await tcp.close();
 * ```
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type TcpProxyMode = 'forward' | 'blackhole' | 'cut';

export interface TcpProxy {
  /** The port the proxy listens on (the same across cut and restore). */
  readonly port: number;
  readonly mode: TcpProxyMode;
  /** Client connections currently open (forwarded or held). */
  readonly connections: number;
  /** Connections accepted so far, in any mode. */
  readonly accepted: number;
  /** `redisUrl` with its host and port replaced by the proxy's (credentials, db and query kept). */
  url(redisUrl: string): string;
  /** Destroys every live socket and stops listening: connects are refused. */
  cut(): Promise<void>;
  /** Accepts connections (listening again if cut) but forwards nothing; live connections go silent too. */
  blackhole(): Promise<void>;
  /** Listens again on the same port and forwards. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  upstream: Socket | undefined;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: TcpProxyMode = 'forward';
  let accepted = 0;
  let closed = false;
  const pairs = new Set<Pair>();

  const hold = (pair: Pair) => {
    // Stop forwarding: drop the way to Redis, keep the client's socket open and swallow its bytes.
    pair.client.unpipe();
    pair.upstream?.unpipe();
    pair.upstream?.destroy();
    pair.upstream = undefined;
    pair.client.removeAllListeners('data');
    pair.client.on('data', () => {});
    pair.client.resume();
  };

  const destroy = (pair: Pair) => {
    pair.upstream?.destroy();
    pair.client.destroy();
    pairs.delete(pair);
  };

  const onConnection = (client: Socket) => {
    accepted += 1;
    const pair: Pair = { client, upstream: undefined };
    pairs.add(pair);
    client.on('error', () => {});
    client.once('close', () => destroy(pair));
    if (mode !== 'forward') {
      hold(pair);
      return;
    }
    const upstream = connect({ host: target.host, port: target.port });
    pair.upstream = upstream;
    upstream.on('error', () => destroy(pair));
    upstream.once('close', () => {
      // Redis went away by itself: pass that on, unless the proxy is holding the client on purpose.
      if (pair.upstream === upstream) destroy(pair);
    });
    client.pipe(upstream);
    upstream.pipe(client);
  };

  let server: Server | undefined;
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      const s = createServer(onConnection);
      server = s;
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        resolve();
      });
    });
  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!server?.listening) return resolve();
      server.close(() => resolve());
    });

  await listen(0);
  const port = (server!.address() as AddressInfo).port;

  return {
    port,
    get mode() {
      return mode;
    },
    get connections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    url(redisUrl: string) {
      const url = new URL(redisUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.toString();
    },
    async cut() {
      mode = 'cut';
      const closing = stopListening();
      for (const pair of [...pairs]) destroy(pair);
      await closing;
    },
    async blackhole() {
      mode = 'blackhole';
      for (const pair of pairs) hold(pair);
      if (!server?.listening && !closed) await listen(port);
    },
    async restore() {
      if (closed) throw new Error('tcp proxy: closed');
      // Held sockets would never work again: make their clients reconnect.
      if (mode === 'blackhole') for (const pair of [...pairs]) destroy(pair);
      mode = 'forward';
      if (!server?.listening) await listen(port);
    },
    async close() {
      closed = true;
      mode = 'cut';
      const closing = stopListening();
      for (const pair of [...pairs]) destroy(pair);
      await closing;
    },
  };
}
