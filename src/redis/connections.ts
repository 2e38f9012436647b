/**
 * Redis connections, one per kind of work (BullMQ's production guide):
 * - the command connection serves requests and must fail fast when Redis is gone, so no request
 *   waits on a dead Redis: no offline queue, one retry, a command time-out;
 * - blocking connections (BullMQ workers, pub/sub) may wait forever and reconnect by themselves.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { errorSummary } from '../observability/repeated-warnings.js';

/** Reconnect quickly at first, then every 2 s, forever: recovery needs no restart. */
const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000);

function attachLogging(client: Redis, log: Logger, role: string): Redis {
  let lastError = '';
  client.on('error', (err: Error) => {
    // ioredis repeats the same error on every reconnect attempt: log each distinct one once,
    // without its stack (the same every time).
    if (err.message !== lastError) log.warn({ err: errorSummary(err), role }, 'redis connection error');
    lastError = err.message;
  });
  client.on('ready', () => {
    if (lastError) log.info({ role }, 'redis connection restored');
    lastError = '';
  });
  return client;
}

/** The fail-fast connection for the request path (cache reads, enqueues, admin). */
export function createCommandConnection(url: string, log: Logger, commandTimeoutMs: number): Redis {
  const options: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 2000,
    retryStrategy,
  };
  return attachLogging(new Redis(url, options), log, 'command');
}

/**
 * The connection refresh jobs record their outcomes on. Unlike the request path it may wait: a
 * command that failed after the upstream answered would make BullMQ retry the job and call the
 * upstream again, so a slow moment (a busy event loop, a Redis fail-over) must not fail it.
 */
export function createJobConnection(url: string, log: Logger): Redis {
  const options: RedisOptions = { maxRetriesPerRequest: 20, commandTimeout: 15_000, connectTimeout: 5000, retryStrategy };
  return attachLogging(new Redis(url, options), log, 'jobs');
}

/** A connection that may block (BullMQ worker, subscriber): waits and reconnects forever. */
export function createBlockingConnection(url: string, log: Logger, role: string): Redis {
  const options: RedisOptions = { maxRetriesPerRequest: null, connectTimeout: 5000, retryStrategy };
  return attachLogging(new Redis(url, options), log, role);
}

/** Resolves once the client is ready, or after `timeoutMs` (a server starts without Redis). */
export async function waitUntilReady(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), timeoutMs);
    const onReady = () => done(true);
    function done(ready: boolean) {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ready);
    }
    client.on('ready', onReady);
  });
}

/**
 * The connection of a one-shot CLI command (`replay`, `ttl`, `invalidate`, `events`): commands
 * wait for the connection, but an unreachable Redis fails the command within seconds.
 */
export function createCliConnection(url: string): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => (times > 2 ? null : 200),
  });
  client.on('error', () => {}); // surfaced by the failing command instead
  return client;
}

/** True when the client is connected and answers PING within `timeoutMs` (false for a hung Redis). */
export async function answersPing(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status !== 'ready') return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('ping timed out')), timeoutMs)));
    return (await Promise.race([client.ping(), timeout])) === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
