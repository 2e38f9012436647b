/**
 * What cardproxy needs from its Redis, checked at start (README, "Redis"): `maxmemory-policy
 * noeviction`, since an evicted queue or event-log key loses refreshes or history silently, and
 * persistence (AOF or RDB snapshots), since the event log is the source of truth. On a cluster,
 * every master is checked (each holds a part of the log), and a warning names the nodes it is about.
 */
import type { Redis } from 'ioredis';
import { isCluster, masterNodes, type RedisClient } from './connections.js';

export interface SettingsWarning {
  readonly fields: Record<string, unknown>;
  readonly msg: string;
}

/** The field `name` of an INFO section's text, or undefined. */
function infoField(info: string, name: string): string | undefined {
  const line = info.split('\r\n').find((l) => l.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

/** Warnings (log fields and message) about Redis settings; none when all is well or unknown. */
export async function redisSettingsWarnings(redis: RedisClient): Promise<SettingsWarning[]> {
  const nodes = masterNodes(redis);
  const perNode = await Promise.all(nodes.map(nodeWarnings));
  if (!isCluster(redis)) return perNode[0] ?? [];
  // One line per distinct warning, naming the masters it applies to.
  const byMessage = new Map<string, { warning: SettingsWarning; nodes: string[] }>();
  perNode.forEach((warnings, i) => {
    const node = `${nodes[i]!.options.host}:${nodes[i]!.options.port}`;
    for (const warning of warnings) {
      const entry = byMessage.get(warning.msg) ?? byMessage.set(warning.msg, { warning, nodes: [] }).get(warning.msg)!;
      entry.nodes.push(node);
    }
  });
  return [...byMessage.values()].map(({ warning, nodes }) => ({ fields: { ...warning.fields, nodes }, msg: warning.msg }));
}

async function nodeWarnings(redis: Redis): Promise<SettingsWarning[]> {
  const warnings: SettingsWarning[] = [];
  const [memory, persistence] = await Promise.all([redis.info('memory'), redis.info('persistence')]);
  const policy = infoField(memory, 'maxmemory_policy');
  if (policy !== undefined && policy !== 'noeviction') {
    warnings.push({
      fields: { maxmemoryPolicy: policy },
      msg: `Redis maxmemory-policy is ${policy}: under memory pressure Redis may evict queued refreshes and the event log. Set it to noeviction`,
    });
  }
  const aof = infoField(persistence, 'aof_enabled') === '1';
  // Managed Redis often refuses CONFIG: then the snapshot schedule is unknown and nothing is said.
  const save = aof ? undefined : await redis.config('GET', 'save').then((reply) => (reply as string[])[1], () => undefined);
  if (!aof && save === '') {
    warnings.push({
      fields: { appendonly: 'no', save: '' },
      msg: 'Redis persistence is off (no AOF, no RDB snapshots): a Redis restart loses the event log, the cards and queued refreshes. Enable appendonly',
    });
  }
  return warnings;
}
