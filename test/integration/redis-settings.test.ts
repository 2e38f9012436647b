/**
 * The start-up check of the Redis settings cardproxy relies on (maxmemory-policy noeviction,
 * persistence), against private redis-servers configured each way.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupProxies, eventually, LogSink, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';
import { createLogger, routeConsoleWarnings } from '../../src/observability/logger.js';

let redis: PrivateRedis | undefined;

afterEach(async () => {
  await cleanupProxies();
  await redis?.stop();
  redis = undefined;
});

const EVICTION = /^Redis maxmemory-policy is allkeys-lru: .* Set it to noeviction$/;
const NO_PERSISTENCE = /^Redis persistence is off \(no AOF, no RDB snapshots\)/;

async function proxyOn(args: string[]) {
  redis = await startPrivateRedis(args);
  const legacy = await startTestUpstream();
  return startTestProxy(testConfig(legacy.url, { redis: { url: redis.url(), keyPrefix: `test-settings-${randomUUID().slice(0, 8)}` } }));
}

/** The check runs in the background after start (a loaded machine took over 3 s once): waits for its end. */
async function settingsChecked(proxy: Awaited<ReturnType<typeof proxyOn>>): Promise<void> {
  await eventually(() => proxy.logs.find('Redis settings checked').length === 1, 15_000, 'the Redis settings check');
}

describe('Redis settings at start', () => {
  it('warns once each when maxmemory-policy evicts and persistence is off', async () => {
    const proxy = await proxyOn(['--maxmemory-policy', 'allkeys-lru']);
    await settingsChecked(proxy);
    expect(proxy.logs.lines.filter((l) => EVICTION.test(String(l.msg)))).toMatchObject([{ level: 40, maxmemoryPolicy: 'allkeys-lru' }]);
    expect(proxy.logs.lines.filter((l) => NO_PERSISTENCE.test(String(l.msg)))).toHaveLength(1);
  });

  it('says nothing with noeviction and AOF on', async () => {
    const proxy = await proxyOn(['--maxmemory-policy', 'noeviction', '--appendonly', 'yes']);
    await settingsChecked(proxy);
    expect(proxy.logs.lines.filter((l) => /^Redis (maxmemory-policy|persistence)/.test(String(l.msg)))).toEqual([]);
  });
});

describe('console warnings', () => {
  it("become JSON log lines; BullMQ's per-connection eviction notice is dropped (the check above says it once)", () => {
    const original = console.warn;
    const sink = new LogSink();
    try {
      routeConsoleWarnings(createLogger({ destination: sink }));
      console.warn('IMPORTANT! Eviction policy is allkeys-lru. It should be "noeviction"');
      console.warn('something %s', 'else');
    } finally {
      console.warn = original;
    }
    expect(sink.lines).toMatchObject([{ level: 40, source: 'console', msg: 'something else' }]);
    expect(sink.raw).toHaveLength(1);
  });
});
