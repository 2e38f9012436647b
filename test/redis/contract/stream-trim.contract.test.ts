/**
 * The periodic trim, per Redis target: every shard's stream is cut to the retention, a shard
 * nobody appends to included, and recent events stay.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/core/clock.js';
import { trimEventStreams } from '../../../src/redis/stream-trim.js';
import { redisTargets, TargetContext } from './redis-target.js';

type Entry = [id: string, fields: string[]];

describe.each(redisTargets())('stream trim on $name', (target) => {
  let ctx: TargetContext;
  afterEach(async () => ctx?.close());

  it('cuts every shard stream to the retention exactly, keeping what is newer', async () => {
    ctx = new TargetContext(target);
    const redis = ctx.client();
    const now = Date.now();
    for (const stream of ctx.keys.eventStreams) {
      for (let i = 0; i < 3; i++) await redis.xadd(stream, `${now - 120_000}-${i}`, 'type', 'card.invalidated', 'data', '{}');
      await redis.xadd(stream, `${now - 30_000}-0`, 'type', 'card.invalidated', 'data', '{}');
    }
    expect(await trimEventStreams(redis, ctx.keys, systemClock, 60)).toBe(3 * target.shards);
    for (const stream of ctx.keys.eventStreams) {
      expect(((await redis.xrange(stream, '-', '+')) as Entry[]).map(([id]) => id)).toEqual([`${now - 30_000}-0`]);
    }
    expect(await trimEventStreams(redis, ctx.keys, systemClock, 60)).toBe(0);
  });
});
