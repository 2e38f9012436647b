/**
 * `npm start` is the process that runs: SIGTERM to npm stops cardproxy gracefully (npm hands the
 * signal to node, which replaced the shell), and a cardproxy whose npm was killed outright stops by
 * itself instead of holding the port with another parent.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCli, stopCliProcesses } from '../helpers/cli-process.js';
import { deleteByPrefix, eventually, redisUrl, testRedisClient } from '../helpers/harness.js';
import { freePort } from '../helpers/free-port.js';

let dir: string;
/** The key prefixes the started processes wrote under (their queues' keys), deleted afterwards. */
const prefixes: string[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardproxy-npm-start-'));
});
afterEach(stopCliProcesses);
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  const redis = await testRedisClient('single');
  try {
    for (const prefix of prefixes) await deleteByPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
});

async function configFile(): Promise<{ file: string; port: number }> {
  const port = await freePort();
  const file = join(dir, `config-${port}.json`);
  const keyPrefix = `test-npm-${randomUUID().slice(0, 8)}`;
  prefixes.push(keyPrefix);
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      redis: { keyPrefix },
      upstreams: { legacy: { url: 'http://127.0.0.1:9/cards' } },
      cards: { alpha: { upstream: 'legacy' } },
    }),
  );
  return { file, port };
}

const answers = (port: number) =>
  fetch(`http://127.0.0.1:${port}/healthz`).then(
    (res) => res.ok,
    () => false,
  );

describe('npm start', () => {
  it('stops on SIGTERM to npm, gracefully, leaving nothing on the port', async () => {
    const { file, port } = await configFile();
    const proc = startCli([], { CARDPROXY_CONFIG: file, REDIS_URL: redisUrl() }, ['npm', 'start', '--silent']);
    await proc.waitForLine('cardproxy listening', { timeoutMs: 60_000 });
    expect(await answers(port)).toBe(true);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(proc.lines().map((l) => l.msg)).toContain('stopped');
    expect(await answers(port)).toBe(false);
  }, 90_000);

  it('stops by itself when the npm that started it is killed outright', async () => {
    // As under npm (npm_lifecycle_event set), with a parent shell that stays and is then killed.
    const { file, port } = await configFile();
    const shell = startCli([], { REDIS_URL: redisUrl(), npm_lifecycle_event: 'start' }, ['sh', '-c', `"${process.execPath}" dist/cli.js start --config "${file}"; true`]);
    await shell.waitForLine('cardproxy listening');
    shell.child.kill('SIGKILL');
    await eventually(async () => !(await answers(port)), 10_000, 'the orphaned server to stop');
  });
});
