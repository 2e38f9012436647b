/**
 * Snapshots and deletes the derived keys of a key prefix (everything replay rebuilds), to compare
 * the cache before and after a replay value for value.
 */
import type { Redis } from 'ioredis';
import type { KeyLayout } from '../../src/redis/keys.js';

/** Key → its value: a string as stored, a hash as an object, a set as its sorted members. */
export type KeySnapshot = Record<string, string | Record<string, string> | string[]>;

export async function derivedKeyNames(redis: Redis, keys: KeyLayout): Promise<string[]> {
  const found = new Set<string>();
  for (const pattern of keys.derivedPatterns) {
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const key of batch) found.add(key);
    } while (cursor !== '0');
  }
  return [...found].sort();
}

export async function snapshotDerivedKeys(redis: Redis, keys: KeyLayout): Promise<KeySnapshot> {
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
export async function deleteAllDerivedKeys(redis: Redis, keys: KeyLayout): Promise<number> {
  const names = await derivedKeyNames(redis, keys);
  return names.length === 0 ? 0 : redis.unlink(...names);
}

/** A stream entry as the tests read it back. */
export interface StreamEvent {
  id: string;
  type: string;
  data: any;
}

/** Every entry of the event stream, oldest first, with `data` parsed. */
export async function readStream(redis: Redis, keys: KeyLayout): Promise<StreamEvent[]> {
  const entries = (await redis.xrange(keys.eventStream(0), '-', '+')) as Array<[string, string[]]>;
  return entries.map(([id, fields]) => {
    const get = (name: string) => fields[fields.indexOf(name) + 1];
    return { id, type: get('type')!, data: JSON.parse(get('data')!) };
  });
}
