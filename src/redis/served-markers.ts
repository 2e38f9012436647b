/**
 * Served markers in Redis (see `src/core/served-marker.ts` for what they mean and how a value
 * reads): one hash per (workspace, customer, thread) context (`keys.served`), a field per card
 * answered in it. A field outlives its own `until` when a later one of the same context lasts
 * longer (the hash expires with its longest marker): readers compare `until` with the time, as
 * they must anyway. One key per context instead of one per card: a warm answer in a new thread
 * writes one hash instead of a key per card, for about 40 % less Redis time and half the memory
 * per answered card (BENCHMARKS.md). Two writers, both atomic per call:
 *
 * - the `/cards` answer records each answered card's marker (`writeServedMarkers`, one command
 *   per event-loop turn and event-log shard: `CardStore.markServed`); a placeholder or error
 *   answer also puts its context on the card's awaiting-reload set, so that the worker that lands
 *   the card finds every context (every thread, for a customer-scope card) whose copy in Plain
 *   needs replacing;
 * - the worker that landed a card claims those contexts (`ServedMarkers.claimAwaitingReload`):
 *   the claim deletes the placeholder/error marker before the push reload is sent, since that
 *   reload discards Plain's copy. Plain's follow-up request then finds no copy recorded, so it is
 *   not taken for a manual reload and is answered from the cache. The claim also makes the push
 *   exactly-once across processes: two workers landing the same card cannot both claim a context.
 */
import type { RedisClient } from './connections.js';
import type { CardRef } from '../core/card-ref.js';
import { encodeServedMarker, type ServedMarker } from '../core/served-marker.js';
import type { KeyLayout } from './keys.js';
import { CardCommands } from './card-commands.js';

/** One answered card: its context's marker hash (`keys.served`), that context, the card and what it was. */
export interface ServedEntry {
  readonly hash: string;
  readonly workspaceId: string;
  readonly customerId: string;
  readonly contextThreadId: string | null;
  readonly cardKey: string;
  readonly marker: ServedMarker;
}

/** A context whose placeholder or error copy in Plain is to be replaced by a push reload. */
export interface ClaimedContext {
  readonly ref: CardRef;
  /** The thread of the request that got the placeholder or error (null outside a thread). */
  readonly contextThreadId: string | null;
}

/** The awaiting-reload set member of a context: JSON, so that no thread id can pass for "no thread". */
export function servedContextMember(contextThreadId: string | null): string {
  return JSON.stringify(contextThreadId);
}

function contextThreadOf(member: string): string | null | undefined {
  try {
    const value: unknown = JSON.parse(member);
    return value === null || typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Card key / value pairs per `HSET` at most: the script passes them with Lua's `unpack`, which
 * takes up to 8,000 values. A turn may answer many requests of one context (a burst for one
 * customer outside threads): their markers then go as several `HSET`s of the same hash.
 */
const MAX_PAIRS_PER_HSET = 1000;

/**
 * Writes markers, one command for all of them (all keys must share a hash tag: in a cluster, the
 * customers' shard's). An answer's entries share one hash, and one turn's answers come one after
 * another: consecutive entries of the same hash are one `HSET`.
 */
export function writeServedMarkers(commands: CardCommands, keys: KeyLayout, entries: readonly ServedEntry[], now: number): Promise<number> {
  const hashes: Array<{ key: string; px: number; fields: string[] }> = [];
  const sets: Array<{ key: string; member: string; px: number }> = [];
  let hash: { key: string; px: number; fields: string[] } | undefined;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const px = Math.max(1, entry.marker.until - now);
    if (hash === undefined || hash.key !== entry.hash || hash.fields.length === 2 * MAX_PAIRS_PER_HSET) {
      hash = { key: entry.hash, px, fields: [] };
      hashes.push(hash);
    } else if (px > hash.px) hash.px = px;
    hash.fields.push(entry.cardKey, encodeServedMarker(entry.marker));
    if (entry.marker.kind !== 'data') {
      sets.push({ key: keys.awaitingReload(entry.workspaceId, entry.customerId, entry.cardKey), member: servedContextMember(entry.contextThreadId), px });
    }
  }
  return commands.markServed(hashes, sets);
}

/** The claim side, for the process that lands cards. */
export class ServedMarkers {
  readonly #redis: RedisClient;
  readonly #keys: KeyLayout;
  readonly #commands: CardCommands;

  constructor(redis: RedisClient, keys: KeyLayout) {
    this.#redis = redis;
    this.#keys = keys;
    this.#commands = new CardCommands(redis);
  }

  /**
   * The contexts in which Plain holds a placeholder or error copy of a card that has just
   * landed, claimed so that no other process pushes them too. A thread-scope card only heals
   * the thread it was loaded for; a customer-scope card every context it was answered in.
   * Call after the card is in the cache.
   */
  async claimAwaitingReload(refs: readonly CardRef[], now: number): Promise<ClaimedContext[]> {
    if (refs.length === 0) return [];
    const setKeys = refs.map((ref) => this.#keys.awaitingReload(ref.workspaceId, ref.customerId, ref.cardKey));
    const pipeline = this.#redis.pipeline();
    for (const key of setKeys) pipeline.smembers(key);
    const members = (await pipeline.exec()) ?? [];
    const claims = refs.map(async (ref, i) => {
      const [err, value] = members[i] ?? [null, []];
      if (err) throw err;
      const contexts = (value as string[]).filter((member) => {
        const thread = contextThreadOf(member);
        return thread !== undefined && (ref.threadId === null || thread === ref.threadId);
      });
      if (contexts.length === 0) return [];
      const markers = contexts.map((member) => ({ hash: this.#keys.served(ref.workspaceId, ref.customerId, contextThreadOf(member)!), member }));
      const claimed = await this.#commands.claimAwaitingReload(setKeys[i]!, ref.cardKey, markers, now);
      return claimed.map((member): ClaimedContext => ({ ref, contextThreadId: contextThreadOf(member) ?? null }));
    });
    return (await Promise.all(claims)).flat();
  }
}
