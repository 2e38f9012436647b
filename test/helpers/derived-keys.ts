/**
 * Snapshots and deletes the derived keys of a key prefix (everything replay rebuilds), to compare
 * the cache before and after a replay value for value.
 */
import type { RedisClient } from '../../src/redis/connections.js';
import type { KeyLayout } from '../../src/redis/keys.js';
import { deleteDerivedKeys } from '../../src/redis/replay.js';
import { scanKeys } from '../../src/redis/scan-keys.js';

/** Key → its value: a string as stored, a hash as an object, a set as its sorted members. */
export type KeySnapshot = Record<string, string | Record<string, string> | string[]>;

export async function derivedKeyNames(redis: RedisClient, keys: KeyLayout): Promise<string[]> {
  const found = new Set<string>();
  for (const pattern of keys.derivedPatterns) for await (const batch of scanKeys(redis, pattern)) for (const key of batch.keys) found.add(key);
  return [...found].sort();
}

export async function snapshotDerivedKeys(redis: RedisClient, keys: KeyLayout): Promise<KeySnapshot> {
  const snapshot: KeySnapshot = {};
  for (const key of await derivedKeyNames(redis, keys)) {
    const type = await redis.type(key);
    if (type === 'string') snapshot[key] = (await redis.get(key))!;
    else if (type === 'hash') snapshot[key] = await redis.hgetall(key);
    else if (type === 'set') snapshot[key] = (await redis.smembers(key)).sort();
    else throw new Error(`unexpected ${type} at ${key}`);
  }
  return snapshot;
}

/** Deletes every derived key, the override hash included. */
export async function deleteAllDerivedKeys(redis: RedisClient, keys: KeyLayout): Promise<number> {
  return deleteDerivedKeys(redis, keys);
}

/** A stream entry as the tests read it back. */
export interface StreamEvent {
  id: string;
  type: string;
  data: any;
}

/** Every entry of an event stream (shard 0's unless told), oldest first, with `data` parsed. */
export async function readStream(redis: RedisClient, keys: KeyLayout, shard = 0): Promise<StreamEvent[]> {
  const entries = (await redis.xrange(keys.eventStream(shard), '-', '+')) as Array<[string, string[]]>;
  return entries.map(([id, fields]) => {
    const get = (name: string) => fields[fields.indexOf(name) + 1];
    return { id, type: get('type')!, data: JSON.parse(get('data')!) };
  });
}
