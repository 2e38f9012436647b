/**
 * What cardproxy needs from its Redis, checked at start (README, "Redis"): `maxmemory-policy
 * noeviction`, since an evicted queue or event-log key loses refreshes or history silently, and
 * persistence (AOF or RDB snapshots), since the event log is the source of truth.
 */
import type { Redis } from 'ioredis';

/** The field `name` of an INFO section's text, or undefined. */
function infoField(info: string, name: string): string | undefined {
  const line = info.split('\r\n').find((l) => l.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

/** Warnings (log fields and message) about Redis settings; none when all is well or unknown. */
export async function redisSettingsWarnings(redis: Redis): Promise<Array<{ fields: Record<string, unknown>; msg: string }>> {
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = [];
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
