/**
 * `replay` (SPEC section 6): rebuilds every derived key (card projections, the customer look-up
 * index, customers' card sets, TTL overrides) from the event log.
 *
 * - Derived keys are deleted first (SCAN with `KeyLayout.derivedPatterns`); the log itself, queue
 *   keys and in-flight / served markers are never touched.
 * - The log is read oldest first in pages (never all at once). Card events go through the same
 *   evolve, retention and compare-and-set write as live events (`CardStore.replayCardEvents`),
 *   so a card whose keep-until has passed is not written and a live writer is never overwritten
 *   blindly. Overrides are folded in memory (one entry per card key) and written at the end,
 *   atomically and only once nothing was appended after the last event read.
 * - Idempotent: every run produces the same keys from the same log. Safe while servers run: a
 *   card they miss meanwhile is refreshed as usual, and events they append during the run are
 *   read and applied too (applying an event twice changes nothing).
 */
import type { RedisClient } from './connections.js';
import type { Logger } from 'pino';
import { isCardStateEvent, type CardStateEvent } from '../core/card-events.js';
import { evolveOverrides, NO_TTL_OVERRIDES, type TtlOverrides } from '../core/ttl-overrides.js';
import type { CardStore } from './card-store.js';
import { readEventPages } from './event-log.js';
import type { KeyLayout } from './keys.js';
import { deleteMatching } from './scan-keys.js';

/** What a replay did, printed by `cardproxy replay`. */
export interface ReplaySummary {
  /** Stream entries read. */
  readonly eventsRead: number;
  readonly cardEvents: number;
  readonly overrideEvents: number;
  /** Entries that are not valid events (unknown type, bad data): skipped. */
  readonly skipped: number;
  /** Card projections written (each card counted once). */
  readonly cardsWritten: number;
  /** Cards whose events were replayed but whose state is past its keep-until: not written. */
  readonly cardsExpired: number;
  /** TTL overrides in force afterwards. */
  readonly overrides: number;
  /** Derived keys deleted before the rebuild. */
  readonly keysDeleted: number;
  readonly durationMs: number;
}

/** What replay works with: the store must use the current config's retention per card key. */
export interface ReplayDeps {
  readonly redis: RedisClient;
  readonly store: CardStore;
  readonly keys: KeyLayout;
  readonly log?: Logger;
  /** Stream entries per page (default 500). */
  readonly batchSize?: number;
}

/** Attempts to catch up with a log that keeps growing before the overrides are written anyway. */
const MAX_CATCH_UP_ROUNDS = 50;

/** Rebuilds every derived key from the event log; see the module comment. */
export async function replayEventLog(deps: ReplayDeps): Promise<ReplaySummary> {
  try {
    return await rebuild(deps);
  } finally {
    // Projections were rewritten without events: every serving process drops its near cache
    // (also after a failed run, which may have left projections half rebuilt).
    await deps.redis.incr(deps.keys.cacheEpoch).catch((err: unknown) => deps.log?.warn({ err }, 'could not announce the replay to near caches'));
  }
}

async function rebuild(deps: ReplayDeps): Promise<ReplaySummary> {
  const { redis, store, keys } = deps;
  const batchSize = deps.batchSize ?? 500;
  const started = Date.now();
  // The override hash is replaced atomically at the end instead, so it never disappears meanwhile.
  const keysDeleted = await deleteDerivedKeys(redis, keys, { keep: [keys.ttlOverrides] });

  let eventsRead = 0;
  let cardEvents = 0;
  let overrideEvents = 0;
  let skipped = 0;
  let overrides: TtlOverrides = NO_TTL_OVERRIDES;
  const cards = new Map<string, boolean>();

  // Shard by shard; overrides are only in `keys.overrideEvents`, which is read last so that its
  // catch-up loop below also covers what was appended while the other shards were replayed.
  const streams = [...keys.eventStreams.filter((s) => s !== keys.overrideEvents), keys.overrideEvents];
  for (const stream of streams) {
    let lastId = '';
    for (let round = 1; ; round++) {
      for await (const page of readEventPages(redis, stream, batchSize, lastId)) {
        const batch: CardStateEvent[] = [];
        for (const { event } of page) {
          eventsRead++;
          if (event === null) skipped++;
          else if (isCardStateEvent(event)) batch.push(event);
          else {
            overrides = evolveOverrides(overrides, event);
            overrideEvents++;
          }
        }
        cardEvents += batch.length;
        if (batch.length > 0) for (const [key, kept] of await store.replayCardEvents(batch)) cards.set(key, kept);
        lastId = page[page.length - 1]!.id;
      }
      if (stream !== keys.overrideEvents) break;
      const force = round >= MAX_CATCH_UP_ROUNDS;
      if (await store.replaceOverrides(overrides, lastId, force)) break;
      if (force) deps.log?.warn({ lastId }, 'event log kept growing during replay: overrides written as of the last event read');
    }
  }

  let cardsWritten = 0;
  for (const kept of cards.values()) if (kept) cardsWritten++;
  const summary: ReplaySummary = {
    eventsRead,
    cardEvents,
    overrideEvents,
    skipped,
    cardsWritten,
    cardsExpired: cards.size - cardsWritten,
    overrides: overrides.size,
    keysDeleted,
    durationMs: Date.now() - started,
  };
  deps.log?.info(summary, 'replay finished');
  return summary;
}

/**
 * Deletes every key matching `keys.derivedPatterns` (SCAN on every master, then UNLINK in
 * batches), except `keep`.
 * @returns how many keys were deleted
 */
export async function deleteDerivedKeys(redis: RedisClient, keys: KeyLayout, opts: { keep?: readonly string[] } = {}): Promise<number> {
  const keep = new Set(opts.keep ?? []);
  let deleted = 0;
  for (const pattern of keys.derivedPatterns) deleted += await deleteMatching(redis, pattern, keep);
  return deleted;
}
