/**
 * The near cache: a bounded in-memory copy of the card projections one serving process reads, so
 * that a warm multi-key `/cards` request touches no Redis at all (SPEC section 14).
 *
 * It never decides anything about a card: it holds decoded states (components kept as stored
 * JSON bytes) and forgets them. Consistency comes from the change feed (change-feed.ts), which
 * reads every event appended to the log and calls `invalidate` for the card it changed; this
 * process's own writes invalidate synchronously. An entry is served only while the feed is
 * *trusted*: continuous since the entry was read, and known to have delivered every change made
 * up to at most `maxLagMs` ago. Otherwise reads go to Redis as if the cache were not there.
 *
 * When the feed is continuous but its last confirmed position is too old (it fell behind: the
 * event loop or Redis was busy), a request does not go to Redis at once: it waits, at most
 * `catchUpWaitMs`, for the feed's next confirmation (`whenCaughtUp`), which the feed then sends
 * without its usual pause. One feed round trip thus serves every request waiting at that moment,
 * where reading Redis would cost each of them a round trip of its own, and under load would make
 * the feed fall further behind (a storm of reads). After the wait the request checks `trusted`
 * again, so what it serves is bounded by `maxLagMs` exactly as before; if the feed has still not
 * caught up (or broke), it reads Redis.
 *
 * Races between a Redis read and a change: a read registers its keys before it is sent
 * (`begin`); a change of one of those keys processed while the read is in flight, or any flush,
 * makes its result unfit to keep (`keep` answers false), because Redis may have answered with
 * the state from before the change. A change processed before the read was sent is harmless.
 *
 * Bounded by `maxBytes` (an estimate of what the entries hold: the components' bytes plus a fixed
 * overhead per entry and per remembered served marker), evicting by CLOCK (second chance), an
 * approximation of least recently used: a hit only sets the entry's `used` flag. Moving the entry
 * to the end of the map on every hit (exact LRU) fills a nearly full Map with deleted slots, and
 * its rehash every few dozen hits was the near cache's main cost on the warm path.
 */
import type { ServedCardState } from '../core/card-state.js';
import { mayKeepServedMarkerInMemory, type ServedMarker } from '../core/served-marker.js';

/** One cached card projection. */
export interface NearEntry {
  readonly state: ServedCardState;
  /** When the projection expires from Redis (its keep-until, by the card clock): absent after. */
  readonly keepUntil: number;
  /**
   * The served marker of the card's own context (`isOwnContext` in core/card-ref.ts: outside
   * threads for a customer-scope card, its thread for a thread-scope one), known to hold `marker`
   * in Redis since this state was read:
   * only a data marker (`mayKeepServedMarkerInMemory`); absent means "not known" (a multi-key
   * answer then writes its marker). Dropped with the entry on any change of the card.
   *
   * One marker, not one per thread the card was answered in: Plain keeps a card per (customer,
   * thread) for its TTL, so a thread asks for a customer-scope card once per TTL, and its marker
   * is written by that answer anyway. Remembered, those markers (up to 64 per entry) lived long
   * enough for young-generation collections to copy and promote them (BENCHMARKS.md: warm
   * requests in threads).
   */
  served: RememberedServed | undefined;
  bytes: number;
  /** Read since eviction last passed it: it gets a second chance before it is evicted. */
  used: boolean;
}

/** A served marker an entry remembers, with its context's marker hash (`KeyLayout.served`; the field is the entry's card). */
export interface RememberedServed {
  readonly hash: string;
  readonly marker: ServedMarker;
}

/** The marker `entry` remembers in the context of marker hash `servedHash`: null when it remembers none there. */
export function rememberedMarker(entry: NearEntry, servedHash: string): ServedMarker | null {
  const served = entry.served;
  return served !== undefined && served.hash === servedHash ? served.marker : null;
}

/** Why everything was dropped; the `reason` label of cardproxy_near_cache_flushes_total. */
export type FlushReason = 'feed_broken' | 'replay';

/** A read in flight: which keys it registered, and the generation it started in. */
export interface ReadTicket {
  readonly keys: readonly string[];
  readonly generation: number;
  readonly seq: number;
}

/** Fixed estimate of what an entry costs besides its components' bytes (objects, key string). */
const ENTRY_OVERHEAD_BYTES = 400;
/** Estimate for a remembered served marker (its key string and objects). */
const SERVED_OVERHEAD_BYTES = 200;
/** How long after the last request the feed keeps confirming its position at its busy pace. */
const DEMAND_WINDOW_MS = 1000;

export interface NearCacheOptions {
  /** Upper bound of the estimated bytes held; 0 turns the cache off. */
  readonly maxBytes: number;
  /** How old the feed's last confirmed position may be while entries are served (SPEC 14: 100 ms). */
  readonly maxLagMs: number;
  /** A monotonic clock in ms for the feed's lag (real time, not the card clock). */
  readonly monotonicNow?: () => number;
  /** Called when everything is dropped. */
  readonly onFlush?: (reason: FlushReason) => void;
  /** How long a request waits for a lagging feed to catch up before it reads Redis (default 50 ms). */
  readonly catchUpWaitMs?: number;
}

/** A catch-up the feed was asked for: requests wait on `promise`. */
interface CatchUp {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly timer: NodeJS.Timeout;
}

export class NearCache {
  readonly maxBytes: number;
  /**
   * Card look-ups served while the feed was trusted, of which hits; and look-ups that bypassed the
   * cache because it was not; requests that waited for the feed to catch up first. Plain numbers,
   * read by the metrics at scrape time (nothing per request).
   */
  readonly stats = { lookups: 0, hits: 0, bypassed: 0, caughtUp: 0 };
  readonly #maxLagMs: number;
  readonly #monotonicNow: () => number;
  readonly #onFlush: (reason: FlushReason) => void;
  /** Insertion order: eviction looks at the front; an entry used since is moved to the end once. */
  readonly #entries = new Map<string, NearEntry>();
  #bytes = 0;
  /** Bumped by every flush and when the feed becomes continuous: older reads may not be kept. */
  #generation = 0;
  /** Counts changes; a ticket remembers the count when its read started. */
  #seq = 0;
  /** Keys with reads in flight → how many. */
  readonly #pending = new Map<string, number>();
  /** Keys changed while reads of them were in flight → `#seq` of that change. */
  readonly #changedAt = new Map<string, number>();
  /** The feed delivers every change from a known position on (false until it starts, and after it broke). */
  #continuous = false;
  /** Every change made before this moment (monotonic ms) has been applied. */
  #coveredAt = -Infinity;
  readonly #catchUpWaitMs: number;
  /** Requests are waiting for the feed's next confirmation. */
  #catchUp: CatchUp | undefined;
  /** Ends the feed's pause between polls (see `pause`). */
  #wakeFeed: (() => void) | undefined;
  /** When a request last asked whether entries may be served (monotonic ms). */
  #demandedAt = -Infinity;

  constructor(opts: NearCacheOptions) {
    this.maxBytes = opts.maxBytes;
    this.#maxLagMs = opts.maxLagMs;
    this.#monotonicNow = opts.monotonicNow ?? (() => performance.now());
    this.#onFlush = opts.onFlush ?? (() => {});
    this.#catchUpWaitMs = opts.catchUpWaitMs ?? 50;
  }

  /** The monotonic clock (ms) the lag is measured with; the feed takes its times from it. */
  monotonicNow(): number {
    return this.#monotonicNow();
  }

  get enabled(): boolean {
    return this.maxBytes > 0;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Whether entries may be served now: the feed is continuous and has caught up recently enough. */
  get trusted(): boolean {
    return this.#trustedAt(this.#monotonicNow());
  }

  /**
   * `trusted`, asked by a request about to read: also notes the demand, which keeps the feed
   * confirming its position at its busy pace (see `inDemand`).
   */
  admit(): boolean {
    const now = this.#monotonicNow();
    this.#demandedAt = now;
    return this.#trustedAt(now);
  }

  #trustedAt(now: number): boolean {
    return this.#continuous && now - this.#coveredAt <= this.#maxLagMs;
  }

  /**
   * Whether requests read through the near cache within the last `DEMAND_WINDOW_MS`. While none
   * do, the feed confirms its position rarely (nobody needs it to be current); the first request
   * after such a lull finds it not `trusted` and waits one feed round trip (`whenCaughtUp`).
   */
  inDemand(): boolean {
    return this.#monotonicNow() - this.#demandedAt <= DEMAND_WINDOW_MS;
  }

  /** Whether the feed is continuous (it may still lag). */
  get continuous(): boolean {
    return this.#continuous;
  }

  // --- the feed's side ----------------------------------------------------------------------

  /**
   * The feed reads every change from now on, starting at a position it read at `sentAt`
   * (monotonic ms). Reads started before this moment are not kept: they may predate that position.
   */
  resume(sentAt: number): void {
    this.#generation++;
    this.#continuous = true;
    this.#coveredAt = sentAt;
  }

  /** Every change made before `sentAt` (monotonic ms) has been passed to `invalidate`. */
  covered(sentAt: number): void {
    if (sentAt > this.#coveredAt) this.#coveredAt = sentAt;
    if (this.#catchUp !== undefined && this.trusted) this.#endCatchUp();
  }

  /**
   * The feed's pause between two polls: `ms`, or until a request asks it to catch up (at once if
   * one is already waiting).
   */
  pause(ms: number): Promise<void> {
    if (this.#catchUp !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined = undefined;
      const wake = () => {
        clearTimeout(timer);
        this.#wakeFeed = undefined;
        resolve();
      };
      timer = setTimeout(wake, ms);
      this.#wakeFeed = wake;
    });
  }

  /** A card's projection changed: forget it, and spoil reads of it in flight. */
  invalidate(key: string): void {
    this.#seq++;
    if (this.#pending.has(key)) this.#changedAt.set(key, this.#seq);
    this.#remove(key);
  }

  /** Drops everything. `feed_broken` also stops serving until the feed `resume`s. */
  flush(reason: FlushReason): void {
    this.#generation++;
    if (reason === 'feed_broken') {
      this.#continuous = false;
      // Nothing to wait for: the waiting requests read Redis.
      if (this.#catchUp !== undefined) this.#endCatchUp();
    }
    this.#entries.clear();
    this.#bytes = 0;
    this.#onFlush(reason);
  }

  // --- the read side ------------------------------------------------------------------------

  /**
   * For a request that found the feed continuous but not `trusted` (behind by more than the lag
   * bound): resolves when the feed has confirmed a newer position, broke, or `catchUpWaitMs` have
   * passed, whichever is first. The caller then checks `trusted` again. All requests waiting at
   * the same time share one wait, and the feed polls at once for them.
   */
  whenCaughtUp(): Promise<void> {
    this.stats.caughtUp++;
    if (this.#catchUp === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#catchUp = { promise, resolve, timer: setTimeout(() => this.#endCatchUp(), this.#catchUpWaitMs) };
      this.#wakeFeed?.();
    }
    return this.#catchUp.promise;
  }

  #endCatchUp(): void {
    const catchUp = this.#catchUp;
    if (catchUp === undefined) return;
    this.#catchUp = undefined;
    clearTimeout(catchUp.timer);
    catchUp.resolve();
  }

  /** Whether an entry for `key` is held (whether or not it may be served now). */
  holds(key: string): boolean {
    return this.#entries.has(key);
  }

  /** The entry for `key` if it may be served at `now` (card clock), marking it recently used. */
  get(key: string, now: number): NearEntry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (now >= entry.keepUntil) {
      this.#remove(key);
      return undefined;
    }
    entry.used = true;
    return entry;
  }

  /** Registers a Redis read of `keys` about to be sent. Pair with `end`. */
  begin(keys: readonly string[]): ReadTicket {
    for (const key of keys) this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
    return { keys, generation: this.#continuous ? this.#generation : -1, seq: this.#seq };
  }

  /** Whether what the read of `ticket` returned for `key` is still current enough to keep. */
  keep(ticket: ReadTicket, key: string): boolean {
    return ticket.generation === this.#generation && (this.#changedAt.get(key) ?? -Infinity) <= ticket.seq;
  }

  /** The read of `ticket` is over (answered or failed). */
  end(ticket: ReadTicket): void {
    for (const key of ticket.keys) {
      const left = (this.#pending.get(key) ?? 1) - 1;
      if (left > 0) {
        this.#pending.set(key, left);
      } else {
        this.#pending.delete(key);
        this.#changedAt.delete(key);
      }
    }
  }

  /** Stores a state read under `ticket` (call only when `keep` said yes). */
  put(key: string, state: ServedCardState, keepUntil: number, componentsBytes: number): void {
    const bytes = ENTRY_OVERHEAD_BYTES + 2 * key.length + componentsBytes;
    if (bytes > this.maxBytes) return;
    this.#remove(key);
    this.#entries.set(key, { state, keepUntil, served: undefined, bytes, used: false });
    this.#bytes += bytes;
    this.#evict(key);
  }

  /**
   * Remembers that card `key`'s served marker in the marker hash `servedHash` of the card's own
   * context (see `NearEntry.served`) now holds `marker` in Redis (null: none).
   */
  rememberServed(key: string, servedHash: string, marker: ServedMarker | null): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    const had = entry.served !== undefined;
    if (marker === null || !mayKeepServedMarkerInMemory(marker)) {
      if (entry.served?.hash !== servedHash) return;
      entry.served = undefined;
    } else {
      entry.served = { hash: servedHash, marker };
    }
    const grew = (entry.served !== undefined ? SERVED_OVERHEAD_BYTES : 0) - (had ? SERVED_OVERHEAD_BYTES : 0);
    entry.bytes += grew;
    this.#bytes += grew;
    if (grew > 0) this.#evict();
  }

  #remove(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }

  /** Evicts until under `maxBytes`; `stored`, the card just stored, goes last. */
  #evict(stored?: string): void {
    // Ends: each pass clears the flag of the entry it moves, so within one round every entry is evictable.
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#entries.entries().next();
      if (oldest.done) break;
      const [key, entry] = oldest.value;
      if (entry.used || (key === stored && this.#entries.size > 1)) {
        entry.used = false;
        this.#entries.delete(key);
        this.#entries.set(key, entry);
        continue;
      }
      this.#remove(key);
    }
  }
}
