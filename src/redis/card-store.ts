/**
 * The card cache in Redis as the rest of cardproxy uses it: the reads of `/cards` (through this
 * process's near cache, batched per event-loop turn), and the writes, each a named command (see
 * card-writes.ts and card-commands.ts). No resolution policy lives here.
 */
import type { RedisClient } from './connections.js';
import type { Clock } from '../core/clock.js';
import { isOwnContext, type CardRef } from '../core/card-ref.js';
import { keepUntil, type CardState, type RetentionPolicy, type ServedCardState } from '../core/card-state.js';
import { rememberedMarker, type NearCache } from '../near-cache/near-cache.js';
import { ComponentsJson } from './components-json.js';
import type { CardEventType, CardStateEvent, TtlOverrideEvent } from '../core/card-events.js';
import type { TtlOverrides } from '../core/ttl-overrides.js';
import { SingleFlight, type RefreshNotice } from './single-flight.js';
import { decodeCardState, decodeForServing } from './card-codec.js';
import { CardWriter, type OwnedMarkers } from './card-writes.js';
import { CustomerLookup, type CustomerRef } from './customer-lookup.js';
import type { CustomerIndexKind, KeyLayout } from './keys.js';
import { decodeServedMarker, type ServedMarker } from '../core/served-marker.js';
import { writeServedMarkers, type ServedEntry } from './served-markers.js';
import { CardCommands } from './card-commands.js';
import { TurnBatch, type TurnCommand } from './turn-batch.js';

export type { CustomerRef } from './customer-lookup.js';
export type { OwnedMarkers } from './card-writes.js';

/** Served markers of one run of answers, written by one command (see CardStore.#markerGroup). */
interface MarkerGroup {
  readonly entries: ServedEntry[];
  readonly written: Promise<unknown>;
}

export class CardStore {
  readonly #redis: RedisClient;
  readonly #keys: KeyLayout;
  readonly #clock: Clock;
  readonly #retentionFor: (cardKey: string) => RetentionPolicy;
  readonly #onAppended: (type: CardEventType) => void;
  readonly #near: NearCache | undefined;
  readonly #writer: CardWriter;
  readonly #lookup: CustomerLookup;
  /** Only to read who holds in-flight markers; the refresh scheduler claims them. */
  readonly #singleFlight: SingleFlight;
  /** Warm-path reads of this event-loop turn, sent together (turn-batch.ts). */
  readonly #turn: TurnBatch;
  /** Served markers waiting for the end of the current run of code, by event-log shard (see #markerGroup). */
  readonly #markers = new Map<number, MarkerGroup>();
  readonly #commands: CardCommands;

  constructor(opts: {
    redis: RedisClient;
    keys: KeyLayout;
    clock: Clock;
    retentionSeconds: number;
    retentionFor: (cardKey: string) => RetentionPolicy;
    /** Called once per event appended to the log (the events-appended counter). */
    onAppended?: (type: CardEventType) => void;
    /**
     * This process's near cache: `readForRequest` reads through it, and every card this store
     * changes is forgotten there at once (the change feed tells the other processes).
     */
    nearCache?: NearCache | undefined;
  }) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#clock = opts.clock;
    this.#retentionFor = opts.retentionFor;
    this.#onAppended = opts.onAppended ?? (() => {});
    this.#near = opts.nearCache?.enabled ? opts.nearCache : undefined;
    this.#writer = new CardWriter({ client: opts.redis, keys: opts.keys, clock: opts.clock, retentionSeconds: opts.retentionSeconds, retentionFor: opts.retentionFor });
    this.#lookup = new CustomerLookup(opts.redis, opts.keys);
    this.#singleFlight = new SingleFlight(opts.redis, opts.keys);
    this.#commands = new CardCommands(opts.redis);
    this.#turn = new TurnBatch(opts.redis);
  }

  get keys(): KeyLayout {
    return this.#keys;
  }

  /**
   * The cached states of a `/cards` request's cards and, for manual reload detection and for not
   * writing served markers that are already right, when Plain's copies expire.
   *
   * Without a near cache: one round trip, an `MGET` of the states, components included, and an
   * `HMGET` of the request context's served-marker hash `servedHash` (all share the shard's hash
   * tag). With one: states come from it while its feed is trusted, and Redis is asked only for
   * what it does not hold; served markers are taken from what the near cache remembers, except
   * with `readMarkers` (a single-key request, which may be a manual reload: its marker is always
   * read from Redis, since any process may have answered that card last). A warm multi-key
   * request thus needs no round trip at all. `contextThreadId` is the request's thread: a marker
   * read from Redis is remembered only for the card's own context (`NearEntry.served`).
   */
  async readForRequest(
    refs: readonly CardRef[],
    servedHash: string,
    readMarkers = true,
    contextThreadId: string | null = null,
  ): Promise<{ states: (ServedCardState | undefined)[]; served: (ServedMarker | null)[] }> {
    const all = this.readNear(refs, servedHash, readMarkers);
    if (all !== undefined) return all;
    const n = refs.length;
    const states = new Array<ServedCardState | undefined>(n);
    const served = new Array<ServedMarker | null>(n).fill(null);
    const cardKeys = new Array<string>(n);
    for (let i = 0; i < n; i++) cardKeys[i] = this.#keys.card(refs[i]!);
    const near = this.#near;
    let trusted = near?.admit() === true;
    if (near && !trusted && near.continuous && cardKeys.some((key) => near.holds(key))) {
      // The feed fell behind: wait for its next confirmation rather than each reading Redis (when
      // there is something to gain: a request for cards it holds none of reads Redis anyway).
      await near.whenCaughtUp();
      trusted = near.trusted;
    }
    if (near) near.stats[trusted ? 'lookups' : 'bypassed'] += n;
    const now = this.#clock.now(); // after any wait: an entry past its keep-until is not served
    // Indexes whose state, and whose served marker, come from Redis.
    const stateFromRedis: number[] = [];
    const markerFromRedis: number[] = [];
    for (let i = 0; i < n; i++) {
      const entry = trusted ? near!.get(cardKeys[i]!, now) : undefined;
      if (entry === undefined) {
        stateFromRedis.push(i);
        markerFromRedis.push(i);
        continue;
      }
      near!.stats.hits++;
      states[i] = entry.state;
      if (readMarkers) markerFromRedis.push(i);
      else served[i] = rememberedMarker(entry, servedHash);
    }
    if (markerFromRedis.length === 0) return { states, served };

    // One round trip (all keys share the customer's slot): an MGET of the projections and their
    // components, if any, and an HMGET of the served markers.
    const m = stateFromRedis.length;
    const keys = new Array<string>(2 * m);
    for (let j = 0; j < m; j++) {
      const i = stateFromRedis[j]!;
      keys[j] = cardKeys[i]!;
      keys[m + j] = this.#keys.components(refs[i]!);
    }
    const fields = new Array<string>(markerFromRedis.length);
    for (let j = 0; j < markerFromRedis.length; j++) fields[j] = refs[markerFromRedis[j]!]!.cardKey;
    const ticket = near?.begin(keys.slice(0, m));
    const markersRead: TurnCommand = { name: 'hmgetBuffer', key: servedHash, fields };
    let values: (Buffer | null)[] = [];
    let markers: (Buffer | null)[];
    try {
      // A warm single-key request (the state from the near cache) reads its marker alone.
      if (m === 0) markers = (await this.#turn.send(markersRead)) as (Buffer | null)[];
      else [values, markers] = (await Promise.all([this.#turn.send({ name: 'mgetBuffer', keys }), this.#turn.send(markersRead)])) as [(Buffer | null)[], (Buffer | null)[]];
    } catch (err) {
      if (ticket) near!.end(ticket);
      throw err;
    }
    for (let j = 0; j < markerFromRedis.length; j++) {
      served[markerFromRedis[j]!] = decodeServedMarker(markers[j]?.toString('latin1'));
    }
    // The components stay the bytes Redis returned (see decodeForServing).
    for (let j = 0; j < m; j++) {
      const i = stateFromRedis[j]!;
      const state = decodeForServing(values[j] ?? null, values[m + j] ?? null);
      states[i] = state;
      if (ticket && state !== undefined && near!.keep(ticket, cardKeys[i]!)) this.#keepNear(cardKeys[i]!, refs[i]!.cardKey, state);
    }
    if (ticket) near!.end(ticket);
    if (near) {
      for (const i of markerFromRedis) {
        if (states[i] !== undefined && isOwnContext(refs[i]!, contextThreadId)) near.rememberServed(cardKeys[i]!, servedHash, served[i]!);
      }
    }
    return { states, served };
  }

  /**
   * What `readForRequest` answers, without waiting, when the near cache holds every card and may
   * serve them now and no served marker must be read from Redis (`readMarkers` false); else
   * undefined, and nothing is counted (the caller then reads with `readForRequest`).
   */
  readNear(
    refs: readonly CardRef[],
    servedHash: string,
    readMarkers: boolean,
  ): { states: (ServedCardState | undefined)[]; served: (ServedMarker | null)[] } | undefined {
    const near = this.#near;
    if (near === undefined || readMarkers || !near.admit()) return undefined;
    const n = refs.length;
    const now = this.#clock.now();
    const states = new Array<ServedCardState | undefined>(n);
    const served = new Array<ServedMarker | null>(n);
    for (let i = 0; i < n; i++) {
      const entry = near.get(this.#keys.card(refs[i]!), now);
      if (entry === undefined) return undefined;
      states[i] = entry.state;
      served[i] = rememberedMarker(entry, servedHash);
    }
    near.stats.lookups += n;
    near.stats.hits += n;
    return { states, served };
  }

  /** Stores a state read from Redis in the near cache, its components as bytes of their own. */
  #keepNear(key: string, cardKey: string, state: ServedCardState): void {
    const until = keepUntil(state, this.#retentionFor(cardKey));
    if (until === null) return;
    let size = 0;
    let kept = state;
    const components = state.data?.components;
    if (components != null) {
      // A copy: bytes read from Redis may be a slice of the client's whole read buffer.
      const bytes = components instanceof ComponentsJson ? Buffer.from(components.bytes) : Buffer.from(JSON.stringify(components), 'utf8');
      size = bytes.length;
      kept = { ...state, data: { ...state.data!, components: ComponentsJson.fromBytes(bytes) } };
    }
    this.#near!.put(key, kept, until, size);
  }

  /** Reads whole card states (refresh worker, invalidation, the admin API): one customer's, one MGET. */
  async readStates(refs: readonly CardRef[]): Promise<(CardState | undefined)[]> {
    if (refs.length === 0) return [];
    const values = await this.#redis.mget(...refs.map((ref) => this.#keys.card(ref)), ...refs.map((ref) => this.#keys.components(ref)));
    return refs.map((_, i) => decodeCardState(values[i] ?? null, values[refs.length + i] ?? null));
  }

  /** Which job holds each card's in-flight marker (null: no refresh is queued or running). */
  inflightOwners(refs: readonly CardRef[]): Promise<(string | null)[]> {
    return this.#singleFlight.owners(refs);
  }

  /**
   * Records what Plain was given for each answered card and until when (see served-markers.ts),
   * in one command with the other answers of the same run of code (#markerGroup). Sent without
   * waiting for the reply: it is not on the response's critical path, and a lost marker only
   * misses one reload. `refs`: the cards' refs, for the near cache to remember the markers.
   */
  markServed(entries: readonly ServedEntry[], refs?: readonly CardRef[]): Promise<unknown> {
    if (entries.length === 0) return Promise.resolve(0);
    // An answer's entries are one customer's, so in one group (the loop allows any mix).
    let group: MarkerGroup | undefined;
    let writes: Promise<unknown>[] | undefined;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (group === undefined || entry.customerId !== entries[i - 1]!.customerId || entry.workspaceId !== entries[i - 1]!.workspaceId) {
        group = this.#markerGroup(entry.workspaceId, entry.customerId);
        if (writes === undefined) writes = [group.written];
        else if (!writes.includes(group.written)) writes.push(group.written);
      }
      group.entries.push(entry);
    }
    const written = writes!.length === 1 ? writes![0]! : Promise.all(writes!);
    const near = this.#near;
    if (!near || !refs) return written;
    // Once written, the markers are known to hold these values: the near cache remembers those of
    // the cards' own contexts (see NearEntry.served); a thread's marker of a customer-scope card is not kept.
    let own: number[] | undefined;
    for (let i = 0; i < entries.length; i++) if (isOwnContext(refs[i]!, entries[i]!.contextThreadId)) (own ??= []).push(i);
    if (own === undefined) return written;
    return written.then((result) => {
      for (const i of own) near.rememberServed(this.#keys.card(refs[i]!), entries[i]!.hash, entries[i]!.marker);
      return result;
    });
  }

  /**
   * The markers of the answers made in one run of code (the lean path answers a turn's requests
   * in one such run; the continuations one Redis reply resumes are another) for one event-log
   * shard: written as one `markServed` command once that run is over (`process.nextTick`), not
   * one per answer (a customer's keys share its shard's hash tag, so the command stays in one
   * slot of a cluster): in a thread every warm answer writes its markers, and each command costs
   * a command object, a reply to decode and a promise besides its arguments (Redis's own
   * `EVALSHA` overhead too).
   *
   * Right after the run, not in the next turn (`setImmediate`): the command then leaves in the
   * same turn as the answers, and the markers do not wait through the next turn's reads. Measured
   * with every warm 5-card request in a new thread: CPU per request 0.96-0.97 of what waiting for
   * the next turn cost (BENCHMARKS.md: served markers sent in the turn).
   *
   * Sent on the connection itself, not with the turn's reads (turn-batch.ts): an ioredis
   * `Pipeline` copies every defined script onto itself and was the largest part of what a warm
   * answer in a new thread left for young-generation collections to promote (BENCHMARKS.md: 1.06
   * MB against 0.58 MB promoted per collection). Such an answer needs no other command, so a
   * turn's answers still make one write.
   */
  #markerGroup(workspaceId: string, customerId: string): MarkerGroup {
    const shard = this.#keys.shardOf(workspaceId, customerId);
    let group = this.#markers.get(shard);
    if (group === undefined) {
      const entries: ServedEntry[] = [];
      const written = new Promise((runEnded) => process.nextTick(runEnded)).then(() => {
        // Serialized now: later answers start a new group.
        this.#markers.delete(shard);
        return writeServedMarkers(this.#commands, this.#keys, entries, this.#clock.now());
      });
      group = { entries, written };
      this.#markers.set(shard, group);
    }
    return group;
  }

  /** Deletes served markers of one context (see `CardResolver`'s take-over before a refresh it waits for). */
  async forgetServed(servedHash: string, cardKeys: readonly string[]): Promise<void> {
    if (cardKeys.length > 0) await this.#turn.send({ name: 'hdel', key: servedHash, fields: [...cardKeys] });
  }

  /**
   * Appends card-state events (one customer's, outside a refresh job: an invalidation) and updates
   * their projections atomically, compare-and-set.
   * @returns the stream ids of the appended events
   */
  async applyCardEvents(events: readonly CardStateEvent[]): Promise<string[]> {
    return this.#appended(events, await this.#writer.append(events));
  }

  /**
   * A refresh job's outcome (see single-flight.ts): its cards' events and projections,
   * its in-flight markers released and `notice` published to waiting requests, in one step.
   * @returns the stream ids of the appended events
   */
  async recordRefreshOutcome(events: readonly CardStateEvent[], release: OwnedMarkers, notice: RefreshNotice): Promise<string[]> {
    return this.#appended(events, await this.#writer.recordRefreshOutcome(events, release, notice));
  }

  #appended(events: readonly CardStateEvent[], written: { ids: string[]; kept: Map<string, boolean> }): string[] {
    for (const key of written.kept.keys()) this.#near?.invalidate(key);
    for (const event of events) this.#onAppended(event.type);
    return written.ids;
  }

  /**
   * Replay: applies card-state events that are already in the log to their projections (and the
   * customer index), exactly as the live writes did, without appending them again.
   * @returns per card projection key touched, whether it holds a state now (false: not worth keeping)
   */
  async replayCardEvents(events: readonly CardStateEvent[]): Promise<Map<string, boolean>> {
    const kept = await this.#writer.replay(events);
    for (const key of kept.keys()) this.#near?.invalidate(key);
    return kept;
  }

  /**
   * Appends a TTL-override event and updates the override hash atomically.
   * @returns the stream id of the appended event
   */
  async applyOverrideEvent(event: TtlOverrideEvent): Promise<string> {
    const id = await this.#writer.setOverride(event);
    this.#onAppended(event.type);
    return id;
  }

  /** Replay's last step; see `CardWriter.replaceOverrides`. */
  replaceOverrides(overrides: TtlOverrides, lastEventId: string, force = false): Promise<boolean> {
    return this.#writer.replaceOverrides(overrides, lastEventId, force);
  }

  /** The customers the look-up index knows by this identifier (an email is matched lower-cased). */
  findCustomers(kind: CustomerIndexKind, value: string): Promise<CustomerRef[]> {
    return this.#lookup.findCustomers(kind, value);
  }

  /** The cards cached for one customer (some may have expired since they were listed). */
  customerCards(customer: CustomerRef): Promise<CardRef[]> {
    return this.#lookup.customerCards(customer);
  }

  /** The current run-time TTL overrides, card key → seconds. */
  readOverrides(): Promise<Map<string, number>> {
    return this.#lookup.readOverrides();
  }

  /** One card's run-time TTL override, or null. */
  readOverride(cardKey: string): Promise<number | null> {
    return this.#lookup.readOverride(cardKey);
  }
}
