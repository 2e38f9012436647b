/**
 * `npm run demo` (dist/demo/run-demo.js) is repeatable and self-sufficient: it clears what an
 * earlier run left under its key prefix, and starts a private redis-server when none answers.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startCli, stopCliProcesses } from '../helpers/cli-process.js';
import { eventually } from '../helpers/harness.js';
import { freePort } from '../helpers/free-port.js';
import { redisServerInstalled, startPrivateRedis, type PrivateRedis } from '../../src/demo/private-redis.js';

const own: PrivateRedis[] = [];
afterEach(async () => {
  await stopCliProcesses();
  for (const redis of own.splice(0)) redis.stop();
});

async function runDemo(redisUrl: string) {
  const [port, legacyPort] = await Promise.all([freePort(), freePort()]);
  const demo = startCli([], { REDIS_URL: redisUrl, PORT: String(port), DEMO_LEGACY_PORT: String(legacyPort) }, [process.execPath, 'dist/demo/run-demo.js']);
  await demo.waitForOutput('cardproxy demo is running', 30_000);
  return { demo, port };
}

async function stop(demo: ReturnType<typeof startCli>) {
  demo.child.kill('SIGTERM');
  expect(await demo.exited).toBe(0);
}

describe.skipIf(!redisServerInstalled())('npm run demo', () => {
  it("deletes what an earlier run left under the demo's prefix, so the tour starts cold", async () => {
    const redis = await startPrivateRedis();
    own.push(redis);
    const client = new Redis(redis.url);
    try {
      await client.set('cardproxy-demo:{w_demo:c_demo_1}:card:usage', 'left over');
      await client.set('cardproxy-demo:ttl-overrides', 'left over');
      await client.set('other-app:key', 'kept');
      const { demo } = await runDemo(redis.url);
      expect(demo.output()).toContain('demo: deleted 2 keys of the previous demo run (prefix cardproxy-demo:)');
      expect(await client.get('cardproxy-demo:{w_demo:c_demo_1}:card:usage')).toBeNull();
      expect(await client.get('other-app:key')).toBe('kept');
      await stop(demo);
    } finally {
      client.disconnect();
    }
  });

  it('starts a private redis-server when no Redis answers, and stops it with the demo', async () => {
    const deadPort = await freePort();
    const { demo, port } = await runDemo(`redis://127.0.0.1:${deadPort}`);
    expect(demo.output()).toContain('starting a private redis-server for this run');
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    const url = /Redis answers at (redis:\/\/127\.0\.0\.1:\d+)/.exec(demo.output())?.[1];
    expect(url).toBeDefined();
    await stop(demo);
    // redis-server takes a moment to shut down after its SIGTERM: gone within 5 s.
    const refused = async () => {
      const after = new Redis(url!, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      after.on('error', () => {});
      try {
        await after.connect();
        return false;
      } catch {
        return true;
      } finally {
        after.disconnect();
      }
    };
    await eventually(refused, 5000, 'the private redis-server to be gone');
  });
});
