/**
 * Keeps every event stream within `events.retentionSeconds` (SPEC 6). Appends trim the stream
 * they write to (`XADD … MINID ~`), but a shard nobody writes to for a while would keep its old
 * events; so a worker trims every shard's stream now and then as well (one `XTRIM` per stream,
 * each on its own slot).
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { RedisClient } from './connections.js';
import type { KeyLayout } from './keys.js';

/** How often a worker trims every stream: retention is counted in minutes at the least. */
export const TRIM_INTERVAL_MS = 60_000;

/** Trims each event stream to the events of the last `retentionSeconds`; returns how many entries went. */
export async function trimEventStreams(redis: RedisClient, keys: KeyLayout, clock: Clock, retentionSeconds: number): Promise<number> {
  const minId = `${Math.max(0, clock.now() - retentionSeconds * 1000)}-0`;
  const trimmed = await Promise.all(keys.eventStreams.map((stream) => redis.xtrim(stream, 'MINID', minId)));
  return trimmed.reduce((sum, n) => sum + n, 0);
}

/** Trims every `TRIM_INTERVAL_MS` until the returned function is called. */
export function trimEventStreamsPeriodically(redis: RedisClient, keys: KeyLayout, clock: Clock, retentionSeconds: number, log: Logger): () => void {
  const timer = setInterval(() => {
    trimEventStreams(redis, keys, clock, retentionSeconds).then(
      (trimmed) => {
        if (trimmed > 0) log.debug({ trimmed }, 'event streams trimmed to the retention');
      },
      () => {}, // Redis is away: its outage is logged already, and the next round trims
    );
  }, TRIM_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
