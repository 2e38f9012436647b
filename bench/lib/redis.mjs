/**
 * Redis helpers: a unique key prefix per run, and cleanup of everything under it (SCAN + UNLINK).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export function assertLocalRedis(url = REDIS_URL) {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== 'localhost') {
    throw new Error(`the benchmark only targets 127.0.0.1; REDIS_URL points at ${host}`);
  }
}

export function uniquePrefix(tag) {
  return `bench-${tag}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function connect(url = REDIS_URL) {
  return new Redis(url, { maxRetriesPerRequest: 2, lazyConnect: false });
}

/** Deletes every key under `prefix:`; bounded to 10 million keys and 5 minutes. */
export async function deletePrefix(redis, prefix) {
  const deadline = Date.now() + 5 * 60_000;
  let cursor = '0';
  let deleted = 0;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    if (keys.length > 0) deleted += await redis.unlink(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  return deleted;
}

/** Every key under `prefix:` (bounded), for accounting. */
export async function scanKeys(redis, prefix, limit = 5_000_000) {
  const out = [];
  let cursor = '0';
  for (let i = 0; i < 100_000 && out.length < limit; i++) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    out.push(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  return out;
}

export async function usedMemory(redis) {
  const info = await redis.info('memory');
  const m = /used_memory:(\d+)/.exec(info);
  return m ? Number(m[1]) : NaN;
}
