/**
 * Finding and deleting keys by pattern (replay's derived keys, a demo's prefix). A Redis Cluster
 * has no cluster-wide SCAN: each master is scanned on its own. Deletion is one key per UNLINK,
 * pipelined on the node that holds them: keys of different slots may not share a command there.
 */
import type { Redis } from 'ioredis';
import { masterNodes, type RedisClient } from './connections.js';

/** Keys matching `pattern`, a batch (of one node) at a time. */
export async function* scanKeys(client: RedisClient, pattern: string): AsyncGenerator<{ node: Redis; keys: string[] }> {
  const nodes = masterNodes(client);
  // A cluster not (yet) connected knows no masters: saying "no keys" would be a lie.
  if (nodes.length === 0) throw new Error('Redis Cluster: no master connected');
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) yield { node, keys };
    } while (cursor !== '0');
  }
}

/** UNLINKs `keys`, all held by `node`; returns how many existed. */
export async function unlinkOnNode(node: Redis, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  const pipeline = node.pipeline();
  for (const key of keys) pipeline.unlink(key);
  const replies = (await pipeline.exec()) ?? [];
  let deleted = 0;
  for (const [err, count] of replies) {
    if (err) throw err;
    deleted += Number(count);
  }
  return deleted;
}

/** Deletes every key matching `pattern` (on every master); returns how many there were. */
export async function deleteMatching(client: RedisClient, pattern: string, keep: ReadonlySet<string> = new Set()): Promise<number> {
  let deleted = 0;
  for await (const { node, keys } of scanKeys(client, pattern)) deleted += await unlinkOnNode(node, keys.filter((key) => !keep.has(key)));
  return deleted;
}
