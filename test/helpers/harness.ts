/**
 * Builds real cardproxy processes for tests: a unique key prefix per test against the real
 * Redis, a manual clock where time matters, logs captured as parsed JSON lines, and cleanup of
 * everything a test created.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { inject } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { startCardproxy, type Cardproxy, type CardproxyOptions, type Role } from '../../src/runtime/cardproxy.js';
import type { Clock } from '../../src/core/clock.js';
import type { RedisClient } from '../../src/redis/connections.js';
import { deleteMatching } from '../../src/redis/scan-keys.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

export const redisUrl = (): string => inject('redisUrl');

/**
 * Where a test's cardproxy keeps its state: the suite's single Redis, or its 3-master Redis
 * Cluster (SPEC 13). Tests that hold in both are parameterised by `redisModes()`.
 */
export type RedisMode = 'single' | 'cluster';

/** `single`, and `cluster` when the suite has a cluster (always under CI, see global-setup.ts). */
export function redisModes(): RedisMode[] {
  return inject('redisClusterNodes').length > 0 ? ['single', 'cluster'] : ['single'];
}

/** The `redis` section of a test config in `mode`. */
export function redisSection(mode: RedisMode, keyPrefix: string): { url: string; clusterNodes: string[]; keyPrefix: string } {
  return { url: redisUrl(), clusterNodes: mode === 'cluster' ? [...inject('redisClusterNodes')] : [], keyPrefix };
}

/** A client of the tests' own (for assertions and clean-up) on the Redis of `mode`; ready when it resolves. */
export async function testRedisClient(mode: RedisMode): Promise<RedisClient> {
  if (mode === 'single') return new Redis(redisUrl());
  const cluster = new Cluster([...inject('redisClusterNodes')]);
  await new Promise<void>((resolve, reject) => {
    cluster.once('ready', () => resolve());
    cluster.once('error', reject);
  });
  return cluster;
}

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  #now: number;
  constructor(start = Date.now()) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}

/** A pino destination that keeps every line, parsed. */
export class LogSink extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      this.raw.push(line);
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not JSON: kept in raw only
      }
    }
    done();
  }
  find(msg: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.msg === msg);
  }
}

type DeepPartialConfig = Record<string, unknown>;

/**
 * A valid config for tests: a unique key prefix, short worker locks, one upstream `legacy`, on
 * the Redis of `mode`.
 */
export function testConfig(upstreamUrl: string, overrides: DeepPartialConfig = {}, mode: RedisMode = 'single'): Config {
  const raw = {
    listen: { host: '127.0.0.1', port: 0 },
    redis: redisSection(mode, `test-${randomUUID().slice(0, 8)}`),
    budgetMs: 1000,
    upstreams: { legacy: { url: upstreamUrl, timeoutMs: 5000, concurrency: 4, retryDelayMs: 200 } },
    cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy' } },
    worker: { lockDurationMs: 2000, stalledIntervalMs: 1000 },
    ...overrides,
  };
  return parseConfig(raw, {});
}

export interface TestProxy extends Cardproxy {
  readonly logs: LogSink;
  readonly config: Config;
}

const started: TestProxy[] = [];
/** Key prefixes to delete after a test, by Redis mode. */
const prefixes = new Map<string, RedisMode>();
const upstreams: FakeUpstream[] = [];

/** Starts a fake upstream that `cleanupProxies` closes. */
export async function startTestUpstream(...args: Parameters<typeof startFakeUpstream>): Promise<FakeUpstream> {
  const upstream = await startFakeUpstream(...args);
  upstreams.push(upstream);
  return upstream;
}

/** Starts an in-process cardproxy (not listening unless asked) and registers it for cleanup. */
export async function startTestProxy(config: Config, role: Role = 'start', opts: CardproxyOptions = {}): Promise<TestProxy> {
  const logs = new LogSink();
  // With `opts.secrets`, lines are scrubbed as a process's are (and reloads add to them).
  const log = createLogger({ level: 'debug', destination: logs, ...(opts.secrets ? { secrets: opts.secrets } : {}) });
  const proxy = await startCardproxy(config, role, { listen: false, log, ...opts });
  const test = Object.assign(proxy, { logs, config });
  started.push(test);
  prefixes.set(config.redis.keyPrefix, config.redis.clusterNodes.length > 0 ? 'cluster' : 'single');
  return test;
}

/** Closes every proxy and test upstream started by this file and deletes the keys of their prefixes. */
export async function cleanupProxies(): Promise<void> {
  const proxies = started.splice(0);
  await Promise.all(proxies.map((p) => p.close().catch(() => {})));
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  for (const mode of new Set(prefixes.values())) {
    const redis = await testRedisClient(mode);
    try {
      for (const [prefix, of] of prefixes) if (of === mode) await deleteByPrefix(redis, prefix);
    } finally {
      redis.disconnect();
    }
  }
  prefixes.clear();
}

export async function deleteByPrefix(redis: RedisClient, prefix: string): Promise<void> {
  await deleteMatching(redis, `${prefix}:*`);
}

/** A Plain-shaped request body. */
export function cardsBody(cardKeys: string[], customerId = 'c_1', extra: Record<string, unknown> = {}) {
  return { cardKeys, customer: { id: customerId, email: `${customerId}@example.com`, externalId: null }, ...extra };
}

/** POSTs /cards through the real app (inject) and returns status, body and duration. */
export async function postCards(
  proxy: Cardproxy,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  const res = await proxy.app.inject({
    method: 'POST',
    url: '/cards',
    headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_test', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, body: res.json(), ms: performance.now() - started };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
