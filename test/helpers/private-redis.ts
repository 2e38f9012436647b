/**
 * A throw-away `redis-server` of a test's own, on a free port, for tests that must wipe,
 * password-protect or reconfigure Redis (never done to the shared one).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';

export interface PrivateRedis {
  readonly port: number;
  /** `redis://[:password@]127.0.0.1:<port>` */
  url(password?: string): string;
  /** An admin client (with `password` if the server asks for one). */
  client(password?: string): Redis;
  stop(): Promise<void>;
}

/** Starts `redis-server` with no persistence unless `args` say otherwise; resolves once it answers. */
export async function startPrivateRedis(args: string[] = []): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cardproxy-private-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = (password?: string) => `redis://${password === undefined ? '' : `:${encodeURIComponent(password)}@`}127.0.0.1:${port}`;
  const client = (password?: string) => {
    const redis = new Redis(url(password), { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    redis.on('error', () => {});
    return redis;
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    // A TCP connect is enough (the server may want a password).
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url,
    client,
    async stop() {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
