/**
 * Builds real cardproxy processes for tests: a unique key prefix per test against the real
 * Redis, a manual clock where time matters, logs captured as parsed JSON lines, and cleanup of
 * everything a test created.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { inject } from 'vitest';
import { Redis } from 'ioredis';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { startCardproxy, type Cardproxy, type CardproxyOptions, type Role } from '../../src/runtime/cardproxy.js';
import type { Clock } from '../../src/core/clock.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

export const redisUrl = (): string => inject('redisUrl');

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

/** A valid config for tests: a unique key prefix, short worker locks, one upstream `legacy`. */
export function testConfig(upstreamUrl: string, overrides: DeepPartialConfig = {}): Config {
  const raw = {
    listen: { host: '127.0.0.1', port: 0 },
    redis: { url: redisUrl(), keyPrefix: `test-${randomUUID().slice(0, 8)}` },
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
const prefixes = new Set<string>();
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
  const log = createLogger({ level: 'debug', destination: logs });
  const proxy = await startCardproxy(config, role, { listen: false, log, ...opts });
  const test = Object.assign(proxy, { logs, config });
  started.push(test);
  prefixes.add(config.redis.keyPrefix);
  return test;
}

/** Closes every proxy and test upstream started by this file and deletes the keys of their prefixes. */
export async function cleanupProxies(): Promise<void> {
  const proxies = started.splice(0);
  await Promise.all(proxies.map((p) => p.close().catch(() => {})));
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  if (prefixes.size === 0) return;
  const redis = new Redis(redisUrl());
  try {
    for (const prefix of prefixes) await deleteByPrefix(redis, prefix);
  } finally {
    prefixes.clear();
    redis.disconnect();
  }
}

export async function deleteByPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
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
