/**
 * Runs once before the suite: makes sure a Redis answers (starting a throw-away `redis-server`
 * when none does) and compiles `dist/` so that tests can spawn the real CLI.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { TestProject } from 'vitest/node';
import { freePort } from './helpers/free-port.js';

async function answers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}


export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let ownRedis: ChildProcess | undefined;
  let ownDir: string | undefined;
  if (!(await answers(redisUrl))) {
    const which = spawnSync('sh', ['-c', 'command -v redis-server']);
    if (which.status !== 0) {
      throw new Error(
        `No Redis answers at ${redisUrl} and no redis-server is installed. ` +
          'Install one (Debian: apt-get install redis-server) or set REDIS_URL to a Redis 6.2+ server.',
      );
    }
    const port = await freePort();
    ownDir = mkdtempSync(join(tmpdir(), 'cardproxy-test-redis-'));
    ownRedis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', ownDir], {
      stdio: 'ignore',
    });
    redisUrl = `redis://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    while (!(await answers(redisUrl))) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  process.env.REDIS_URL = redisUrl;
  project.provide('redisUrl', redisUrl);

  // Process-level tests spawn `node dist/cli.js`; CARDPROXY_SKIP_BUILD=1 skips this when only pure tests run.
  if (process.env.CARDPROXY_SKIP_BUILD !== '1') {
    // The whole build: the console's browser modules too (test/console drives them in Chromium).
    const build = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
    if (build.status !== 0) throw new Error('npm run build failed');
  }

  return async () => {
    ownRedis?.kill('SIGTERM');
    if (ownDir) rmSync(ownDir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
