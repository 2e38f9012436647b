/**
 * Keeps a near cache current by tailing the event log (SPEC 6 and 14). Every change of a card's
 * state is an event appended in the same atomic step as its projection, so reading the stream in
 * order tells this process about every change; the feed forgets the changed card (the next read
 * takes it from Redis). Replay changes projections without appending events: it bumps
 * `<prefix>:cache-epoch` when it is done, and the feed drops everything when that value moves.
 *
 * One connection of its own, polling `GET epoch` + `XREAD` (not blocking) from the last id read
 * `POLL_MS` after the previous reply while requests read through the near cache (about 50 cheap
 * commands a second per process; on a Redis Cluster, where one XREAD cannot span slots, one XREAD
 * per shard stream, sent together), `IDLE_POLL_MS` after it while none do, or at once when
 * requests wait for it (NearCache.whenCaughtUp: the feed fell behind the lag bound).
 * Each reply that is not truncated by COUNT confirms "every change made before this command was
 * sent is applied", which is what the near cache's lag check reads. (A blocking XREAD would
 * deliver events sooner and cost nothing while idle, but the lag check needs that confirmation
 * at least every few tens of ms whether or not anything changed: a blocked XREAD that has not
 * answered says nothing about a connection that hung, and its time-out is only as precise as
 * Redis' `hz` timer, 100 ms by default, so it cannot serve as that heartbeat.)
 *
 * When the feed breaks (connection lost, an error, or no reply within `STALL_MS`): the near cache
 * is dropped at once and not served from; requests read Redis (or, if Redis itself is gone, take
 * the degraded direct path) until the feed is back. Then it restarts from the stream's current
 * end: nothing read before that point is kept, so no change made during the break can be missed.
 */
import { isCluster, type RedisClient } from '../redis/connections.js';
import type { Logger } from 'pino';
import type { KeyLayout } from '../redis/keys.js';
import type { NearCache } from './near-cache.js';

/**
 * Pause between polls when the last one found the log read to its end, while requests read
 * through the near cache: each reply confirms the position for `maxLagMs` (75 ms), so the next one
 * normally lands before that lapses, leaving room for timers that fire late under load.
 */
const POLL_MS = 40;
/**
 * The pause while no request reads through the near cache: nothing is served that needs the
 * confirmation, so the feed only keeps its position and its connection checked (a process idles
 * at one poll a second instead of 25). The first request after the lull waits one round trip.
 */
const IDLE_POLL_MS = 1000;
/** Entries per XREAD; a full reply means more may be waiting. */
const COUNT = 1000;
/** A reply later than this means the feed is stuck (a hung connection): drop and reconnect. */
const STALL_MS = 2000;
/** Pause before trying again after an error. */
const RETRY_MS = 100;

type XReadReply = Array<[stream: string, entries: Array<[id: string, fields: string[]]>]> | null;

export class ChangeFeed {
  readonly #redis: RedisClient;
  readonly #keys: KeyLayout;
  readonly #near: NearCache;
  readonly #log: Logger;
  #closed = false;
  /** Bumped whenever the connection closes: a reply sent before then is not trusted. */
  #connection = 0;
  #lastError = '';
  #loop: Promise<void> | undefined;

  constructor(opts: { redis: RedisClient; keys: KeyLayout; near: NearCache; log: Logger }) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#near = opts.near;
    this.#log = opts.log;
    this.#redis.on('close', () => {
      this.#connection++;
      if (!this.#closed && this.#near.continuous) this.#broken(new Error('feed connection closed'));
    });
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops the loop and closes the feed's connection. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#redis.disconnect();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const streams = this.#keys.eventStreams;
    /** Per event stream (shard), the id of the last entry read; null: start at the log's end. */
    let lastId: string[] | null = null;
    let epoch: string | null = null;
    /** The connection the current read position was taken on. */
    let startedOn = -1;
    while (!this.#closed) {
      const connection = this.#connection;
      // The connection closed since the position was taken (the near cache was dropped then), even if
      // no command failed: ioredis may have queued them and sent them after reconnecting. Start again
      // from the stream's end, which is also what puts the near cache back in use.
      if (connection !== startedOn) lastId = null;
      const sentAt = this.#near.monotonicNow();
      let stall: NodeJS.Timeout | undefined;
      try {
        const stalled = new Promise<never>((_, reject) => {
          stall = setTimeout(() => reject(new Error(`no reply from the event feed within ${STALL_MS} ms`)), STALL_MS);
        });
        if (lastId === null) {
          // (Re)start at the streams' current ends: everything cached from now on is read after them.
          const [epochReply, ...newest] = await Promise.race([this.#readEnds(streams), stalled]);
          if (connection !== this.#connection) continue;
          epoch = epochReply as string | null;
          lastId = newest.map((entries) => (entries as Array<[string, string[]]>)[0]?.[0] ?? '0-0');
          startedOn = connection;
          this.#near.resume(sentAt);
          this.#recovered();
          continue;
        }
        const [epochReply, read] = await Promise.race([this.#readAfter(streams, lastId), stalled]);
        if (connection !== this.#connection) {
          lastId = null;
          continue;
        }
        if (epochReply !== epoch) {
          epoch = epochReply as string | null;
          this.#near.flush('replay');
        }
        let more = false;
        for (const [stream, entries] of read) {
          const shard = streams.indexOf(stream);
          for (const [id, fields] of entries) {
            lastId[shard] = id;
            const key = this.#changedCard(fields);
            if (key !== null) this.#near.invalidate(key);
          }
          if (entries.length >= COUNT) more = true;
        }
        if (!more) {
          this.#near.covered(sentAt);
          // At once when requests wait for the feed to catch up (see NearCache.whenCaughtUp).
          await this.#near.pause(this.#near.inDemand() ? POLL_MS : IDLE_POLL_MS);
        }
      } catch (err) {
        if (this.#closed) break;
        this.#broken(err);
        lastId = null;
        if (err instanceof Error && err.message.startsWith('no reply')) this.#redis.disconnect(true);
        await sleep(RETRY_MS);
      } finally {
        clearTimeout(stall);
      }
    }
  }

  /** The cache epoch, then each stream's newest entry (XREVRANGE COUNT 1 replies). */
  async #readEnds(streams: readonly string[]): Promise<unknown[]> {
    if (isCluster(this.#redis)) {
      const redis = this.#redis;
      return Promise.all([redis.get(this.#keys.cacheEpoch), ...streams.map((stream) => redis.xrevrange(stream, '+', '-', 'COUNT', 1))]);
    }
    const pipeline = this.#redis.pipeline().get(this.#keys.cacheEpoch);
    for (const stream of streams) pipeline.xrevrange(stream, '+', '-', 'COUNT', 1);
    return results(await pipeline.exec(), 1 + streams.length);
  }

  /** The cache epoch, and the entries of every stream after its last id read (at most COUNT each). */
  async #readAfter(streams: readonly string[], lastId: readonly string[]): Promise<[epoch: unknown, read: NonNullable<XReadReply>]> {
    if (isCluster(this.#redis)) {
      // No multi-slot XREAD in a cluster; the connection pipelines these per node by itself.
      const redis = this.#redis;
      const [epoch, ...reads] = await Promise.all([
        redis.get(this.#keys.cacheEpoch),
        ...streams.map((stream, i) => redis.xread('COUNT', COUNT, 'STREAMS', stream, lastId[i]!) as Promise<XReadReply>),
      ]);
      return [epoch, reads.flatMap((read) => (read as XReadReply) ?? [])];
    }
    const reply = await this.#redis.pipeline().get(this.#keys.cacheEpoch).xread('COUNT', COUNT, 'STREAMS', ...streams, ...lastId).exec();
    const [epoch, read] = results(reply, 2);
    return [epoch, (read as XReadReply) ?? []];
  }

  /** The projection key of the card an entry changed, or null (TTL overrides change no card). */
  #changedCard(fields: readonly string[]): string | null {
    let data: string | undefined;
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'data') data = fields[i + 1];
    if (data === undefined) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return null;
    }
    if (typeof parsed !== 'object' || parsed === null) return null;
    const { workspaceId, customerId, threadId, cardKey } = parsed as Record<string, unknown>;
    if (typeof workspaceId !== 'string' || typeof customerId !== 'string' || typeof cardKey !== 'string') return null;
    return this.#keys.card({ workspaceId, customerId, threadId: typeof threadId === 'string' ? threadId : null, cardKey });
  }

  #broken(err: unknown): void {
    if (this.#near.continuous) this.#near.flush('feed_broken');
    const message = err instanceof Error ? err.message : String(err);
    if (message !== this.#lastError) this.#log.warn({ err }, 'event feed broken: near cache dropped, reading Redis until it is back');
    this.#lastError = message;
  }

  #recovered(): void {
    if (this.#lastError !== '') this.#log.info('event feed back: near cache in use again');
    this.#lastError = '';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The replies of a pipeline, throwing the first command error. */
function results(reply: Array<[Error | null, unknown]> | null, n: number): unknown[] {
  if (reply === null || reply.length < n) throw new Error('incomplete reply from the event feed');
  return reply.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
