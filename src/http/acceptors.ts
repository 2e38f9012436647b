/**
 * More than one listening socket on the HTTP port, all handing their connections to the one server.
 *
 * Since libuv 1.45 (Node.js 20), a listening socket accepts one connection per turn of the event
 * loop (libuv/libuv#3696, nodejs/performance#95). A process whose turns are long, such as one
 * taking a burst of new customers while Redis replies and refresh enqueues fill every turn, then
 * leaves the rest of the burst in the kernel's accept queue, one turn each, before it can even see
 * those requests and start their budgets: in the cold storm (200 connections at once) the last of
 * them waited up to 480 ms there (BENCHMARKS.md). With `listen.acceptors` sockets bound to the
 * same address with SO_REUSEPORT, the kernel spreads new connections over them and each accepts
 * one per turn.
 *
 * SO_REUSEPORT also lets another process of the same user bind the port and take a share of its
 * connections. It needs Node.js 22.12 or newer (`reusePort`) and Linux or FreeBSD; elsewhere, or
 * with `listen.acceptors` 1, the server accepts on its one socket as before.
 */
import { createServer, type Server as NetServer } from 'node:net';
import type { Server } from 'node:http';
import type { Logger } from 'pino';

/** Whether this runtime and platform bind with SO_REUSEPORT (Node's `reusePort` listen option). */
export function reusePortSupported(version = process.versions.node, platform: NodeJS.Platform = process.platform): boolean {
  if (platform !== 'linux' && platform !== 'freebsd') return false;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

export interface Acceptors {
  /** Listening sockets in all, the server's own included. */
  readonly count: number;
  /** Stops the extra sockets listening; connections they accepted belong to the server. */
  close(): void;
}

/**
 * Binds `wanted - 1` more sockets to the address `server` listens on (bound with `reusePort`) and
 * hands each connection they accept to `server`, as its own socket would: `'connection'` is how
 * node:http and node:https take a connection. Stops at the first socket that cannot bind, with a
 * warning: the server keeps what it has.
 */
export async function openAcceptors(server: Server, wanted: number, log: Logger): Promise<Acceptors> {
  const address = server.address();
  const extra: NetServer[] = [];
  if (wanted > 1 && address !== null && typeof address === 'object') {
    // As node:http's own listening socket: Nagle off on every accepted connection.
    const take = (socket: unknown) => server.emit('connection', socket);
    for (let i = 1; i < wanted; i++) {
      const acceptor = createServer({ noDelay: true }, take);
      try {
        await new Promise<void>((resolve, reject) => {
          acceptor.once('error', reject);
          acceptor.listen({ host: address.address, port: address.port, reusePort: true }, () => {
            acceptor.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        log.warn({ err, acceptors: 1 + extra.length, wanted }, 'could not open every listen.acceptors socket: accepting on fewer');
        break;
      }
      extra.push(acceptor);
    }
  }
  return {
    count: 1 + extra.length,
    close: () => {
      for (const acceptor of extra) acceptor.close();
    },
  };
}
