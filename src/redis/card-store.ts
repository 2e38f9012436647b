/**
 * The card cache in Redis: reads for `/cards` and the atomic "append event + update projection"
 * write that every state change goes through. No resolution policy lives here.
 */
import type { ChainableCommander, Result } from 'ioredis';
import { isCluster, type RedisClient } from './connections.js';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import type { CardRef } from '../core/card-ref.js';
import { evolve, evolveKept, keepUntil, type CardState, type RetentionPolicy, type ServedCardState } from '../core/card-state.js';
import type { NearCache } from '../near-cache/near-cache.js';
import { ComponentsJson } from '../core/components-json.js';
import { TtlSourceSchema } from '../core/effective-ttl.js';
import type { CardEventType, CardStateEvent, TtlOverrideEvent } from '../core/card-events.js';
import { evolveOverrides, NO_TTL_OVERRIDES, type TtlOverrides } from '../core/ttl-overrides.js';
import { APPLY_EVENTS_LUA, REPLACE_OVERRIDES_LUA } from './lua-scripts.js';
import type { CustomerIndexKind, KeyLayout } from './keys.js';
import { decodeServedMarker, type ServedMarker } from '../core/served-marker.js';
import { markServedCommand, type ServedEntry } from './served-markers.js';

/**
 * Shape check for states read back from Redis. Components were validated when they were loaded
 * from the upstream; re-validating every component on every warm read would cost more than it
 * protects, so only the envelope is checked here. A state that fails the check counts as absent.
 */
const StoredCardState = z.object({
  data: z
    .object({
      components: z.array(z.any()).nullable(),
      ttlSeconds: z.number(),
      fetchedAt: z.number(),
      upstream: z.string(),
      ttlSource: TtlSourceSchema.optional(),
    })
    .nullable(),
  failure: z
    .object({ kind: z.enum(['retriable', 'integration']), at: z.number(), detail: z.string(), status: z.number().nullable() })
    .nullable(),
  invalidatedAt: z.number().nullable(),
  customerEmail: z.string().nullable(),
  customerExternalId: z.string().nullable(),
});

/** Decodes a stored state; anything unreadable is treated as "nothing cached". */
export function decodeCardState(raw: string | null): CardState | undefined {
  if (raw === null) return undefined;
  try {
    const parsed = StoredCardState.safeParse(JSON.parse(raw));
    return parsed.success ? (parsed.data as CardState) : undefined;
  } catch {
    return undefined;
  }
}

/** How every stored state starts: `JSON.stringify` of a state writes `data.components` first. */
const STATE_PREFIX = '{"data":{"components":';

/**
 * The warm path's decoder: like {@link decodeCardState}, but the card's components, which are
 * most of the bytes, are not parsed: `data.components` is a {@link ComponentsJson} holding the
 * JSON text that was stored (what `JSON.stringify` wrote when the card was loaded, and so byte for
 * byte what serializing the parsed components gives). The rest of the state gets the same
 * envelope check. A value not laid out as expected takes the full decoder.
 */
export function decodeCardStateForServing(raw: string | null): ServedCardState | undefined {
  if (raw === null || !raw.startsWith(STATE_PREFIX) || raw.charCodeAt(STATE_PREFIX.length) !== 0x5b /* [ */) {
    return decodeCardState(raw);
  }
  const end = endOfJsonArray(raw, STATE_PREFIX.length);
  if (end === -1) return decodeCardState(raw);
  const state = decodeCardState(`${STATE_PREFIX}[]${raw.slice(end + 1)}`);
  if (state?.data == null) return decodeCardState(raw);
  return { ...state, data: { ...state.data, components: new ComponentsJson(raw.slice(STATE_PREFIX.length, end + 1)) } };
}

/**
 * The index of the `]` that closes the JSON array opening at `start`, or -1. Skips string
 * literals (with their escapes) and counts nesting; it does not validate the JSON in between,
 * which `JSON.stringify` wrote.
 */
function endOfJsonArray(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i === -1) return -1;
        let backslashes = 0;
        while (text.charCodeAt(i - 1 - backslashes) === 0x5c /* \ */) backslashes++;
        if (backslashes % 2 === 0) break;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      depth++;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
      if (depth === 0) return c === 0x5d ? i : -1;
      if (depth < 0) return -1;
    }
  }
  return -1;
}

/** An in-flight marker that the applying job owns and releases with its events. */
export interface OwnedMarker {
  readonly ref: CardRef;
  readonly owner: string;
}

/** Announced on the refresh channel once a refresh's events are applied. */
export interface RefreshNotice {
  readonly outcomes: ReadonlyArray<readonly [cardRefId: string, outcome: 'refreshed' | 'failed']>;
}

interface PlanEntry {
  type: string;
  data: string;
  set?: { k: number; check: boolean; expect: string | false; value: string | false; px: number };
  hset?: { k: number; f: string; v: string };
  hdel?: { k: number; f: string };
  index?: { k: number; member: string; px: number }[];
  unindex?: { k: number; member: string }[];
}

/** A customer as the look-up index knows it. */
export interface CustomerRef {
  readonly workspaceId: string;
  readonly customerId: string;
}

const MAX_CAS_ATTEMPTS = 8;
/** Replay races every live writer while it rebuilds, so it tries harder (per card) before giving up. */
const MAX_REPLAY_CAS_ATTEMPTS = 25;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cardproxyApplyEvents(numKeys: number, ...args: string[]): Result<Array<number | string>, Context>;
    cardproxyReplaceOverrides(...args: string[]): Result<number, Context>;
  }
}

/** A warm-path command waiting for its event-loop turn's pipeline. */
interface BatchedCommand {
  add: (pipeline: ChainableCommander) => void;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class CardStore {
  readonly #redis: RedisClient;
  readonly #keys: KeyLayout;
  readonly #clock: Clock;
  readonly #retentionMs: number;
  readonly #retentionFor: (cardKey: string) => RetentionPolicy;
  readonly #onAppended: (type: CardEventType) => void;
  readonly #near: NearCache | undefined;
  /** Warm-path commands waiting for this event-loop turn's pipeline (see #batched). */
  #batch: BatchedCommand[] = [];

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
    this.#retentionMs = opts.retentionSeconds * 1000;
    this.#retentionFor = opts.retentionFor;
    this.#onAppended = opts.onAppended ?? (() => {});
    this.#near = opts.nearCache?.enabled ? opts.nearCache : undefined;
    if (typeof (this.#redis as { cardproxyApplyEvents?: unknown }).cardproxyApplyEvents !== 'function') {
      this.#redis.defineCommand('cardproxyApplyEvents', { lua: APPLY_EVENTS_LUA });
    }
    if (typeof (this.#redis as { cardproxyReplaceOverrides?: unknown }).cardproxyReplaceOverrides !== 'function') {
      this.#redis.defineCommand('cardproxyReplaceOverrides', { numberOfKeys: 2, lua: REPLACE_OVERRIDES_LUA });
    }
  }

  get keys(): KeyLayout {
    return this.#keys;
  }

  /**
   * The cached states of a `/cards` request's cards and, for manual reload detection and for not
   * writing served markers that are already right, when Plain's copies expire.
   *
   * Without a near cache: one `MGET` of all of them (they share the customer's hash tag). With
   * one: states come from it while its feed is trusted, and Redis is asked only for what it does
   * not hold; served markers are taken from what the near cache remembers, except with
   * `readMarkers` (a single-key request, which may be a manual reload: its marker is always read
   * from Redis, since any process may have answered that card last). A warm multi-key request
   * thus needs no round trip at all.
   */
  async readForRequest(
    refs: readonly CardRef[],
    servedKeys: readonly string[],
    readMarkers = true,
  ): Promise<{ states: (ServedCardState | undefined)[]; served: (ServedMarker | null)[] }> {
    const n = refs.length;
    const states = new Array<ServedCardState | undefined>(n);
    const served = new Array<ServedMarker | null>(n).fill(null);
    const cardKeys = new Array<string>(n);
    for (let i = 0; i < n; i++) cardKeys[i] = this.#keys.card(refs[i]!);
    const near = this.#near;
    const now = this.#clock.now();
    const trusted = near?.trusted === true;
    if (near) near.stats[trusted ? 'lookups' : 'bypassed'] += n;
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
      else served[i] = entry.served.get(servedKeys[i]!) ?? null;
    }
    if (markerFromRedis.length === 0) return { states, served };

    const keys = new Array<string>(stateFromRedis.length + markerFromRedis.length);
    for (let j = 0; j < stateFromRedis.length; j++) keys[j] = cardKeys[stateFromRedis[j]!]!;
    for (let j = 0; j < markerFromRedis.length; j++) keys[stateFromRedis.length + j] = servedKeys[markerFromRedis[j]!]!;
    const ticket = near?.begin(keys.slice(0, stateFromRedis.length));
    let values: (string | null)[];
    try {
      values = (await this.#batched((pipeline) => pipeline.mget(keys))) as (string | null)[];
    } catch (err) {
      if (ticket) near!.end(ticket);
      throw err;
    }
    for (let j = 0; j < markerFromRedis.length; j++) {
      served[markerFromRedis[j]!] = decodeServedMarker(values[stateFromRedis.length + j]);
    }
    // States come back with their components as stored JSON text (see decodeCardStateForServing).
    for (let j = 0; j < stateFromRedis.length; j++) {
      const i = stateFromRedis[j]!;
      const state = decodeCardStateForServing(values[j] ?? null);
      states[i] = state;
      if (ticket && state !== undefined && near!.keep(ticket, cardKeys[i]!)) this.#keepNear(cardKeys[i]!, refs[i]!.cardKey, state);
    }
    if (ticket) near!.end(ticket);
    if (near) {
      for (const i of markerFromRedis) if (states[i] !== undefined) near.rememberServed(cardKeys[i]!, servedKeys[i]!, served[i]!);
    }
    return { states, served };
  }

  /** Stores a state read from Redis in the near cache, its components as bytes. */
  #keepNear(key: string, cardKey: string, state: ServedCardState): void {
    const until = keepUntil(state, this.#retentionFor(cardKey));
    if (until === null) return;
    let size = 0;
    let kept = state;
    const components = state.data?.components;
    if (components != null) {
      const bytes = components instanceof ComponentsJson ? components.bytes : Buffer.from(JSON.stringify(components), 'utf8');
      size = bytes.length;
      kept = { ...state, data: { ...state.data!, components: ComponentsJson.fromBytes(bytes) } };
    }
    this.#near!.put(key, kept, until, size);
  }

  /** Reads card states (refresh worker, invalidation, replay). */
  async readStates(refs: readonly CardRef[]): Promise<(CardState | undefined)[]> {
    if (refs.length === 0) return [];
    const values = await this.#redis.mget(...refs.map((ref) => this.#keys.card(ref)));
    return values.map(decodeCardState);
  }

  /** Which job holds each card's in-flight marker (null: no refresh is queued or running). */
  async inflightOwners(refs: readonly CardRef[]): Promise<(string | null)[]> {
    if (refs.length === 0) return [];
    return this.#redis.mget(...refs.map((ref) => this.#keys.inflight(ref)));
  }

  /**
   * Records what Plain was given for each answered card and until when (see served-markers.ts).
   * Sent without waiting for the reply: it is not on the response's critical path, and a lost
   * marker only misses one reload.
   */
  markServed(entries: readonly ServedEntry[], nearKeys?: readonly string[]): Promise<unknown> {
    if (entries.length === 0) return Promise.resolve(0);
    const now = this.#clock.now();
    const written = this.#batched((pipeline) => markServedCommand(pipeline, this.#keys, entries, now));
    const near = this.#near;
    if (!near || !nearKeys) return written;
    // Once written, the markers are known to hold these values (see NearEntry.served).
    return written.then((result) => {
      entries.forEach((entry, i) => near.rememberServed(nearKeys[i]!, entry.key, entry.marker));
      return result;
    });
  }

  /** Deletes served markers (see `CardResolver`'s take-over before a refresh it waits for). */
  async forgetServed(keys: readonly string[]): Promise<void> {
    if (keys.length > 0) await this.#batched((pipeline) => pipeline.del(...keys));
  }

  /**
   * Queues a warm-path command into one pipeline per event-loop turn: the requests answered
   * concurrently then share one socket write (and one Pipeline) instead of one write per
   * command, which is most of what a warm request costs besides its own HTTP I/O. Under no
   * concurrency a batch holds one command and the wait is one `setImmediate`. Each command still
   * has the connection's command time-out, and fails on its own.
   */
  #batched(add: (pipeline: ChainableCommander) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#batch.push({ add, resolve, reject });
      if (this.#batch.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const batch = this.#batch;
    this.#batch = [];
    // A cluster pipeline must stay on one node: there each request's commands (one customer, one
    // slot) go as a pipeline of their own.
    if (isCluster(this.#redis)) for (const entry of batch) this.#send([entry]);
    else this.#send(batch);
  }

  #send(batch: readonly BatchedCommand[]): void {
    let exec: Promise<Array<[Error | null, unknown]> | null>;
    try {
      const pipeline = this.#redis.pipeline();
      for (const { add } of batch) add(pipeline);
      exec = pipeline.exec();
    } catch (err) {
      for (const { reject } of batch) reject(err);
      return;
    }
    exec.then(
      (results) => {
        batch.forEach(({ resolve, reject }, i) => {
          const result = results?.[i];
          if (!result) reject(new Error('no reply in the pipeline'));
          else if (result[0]) reject(result[0]);
          else resolve(result[1]);
        });
      },
      (err: unknown) => {
        for (const { reject } of batch) reject(err);
      },
    );
  }

  /**
   * Appends card-state events and updates their projections atomically. Each card is read,
   * evolved and written back with compare-and-set, retried when a concurrent writer got there
   * first. Optionally releases in-flight markers and announces outcomes in the same step.
   * @returns the stream ids of the appended events
   */
  async applyCardEvents(
    events: readonly CardStateEvent[],
    opts: { release?: readonly OwnedMarker[]; notice?: RefreshNotice } = {},
  ): Promise<string[]> {
    const { result, written } = await this.#applyCardEvents(events, { replay: false, ...opts });
    for (const key of written.keys()) this.#near?.invalidate(key);
    for (const event of events) this.#onAppended(event.type);
    return result.slice(1).map(String);
  }

  /**
   * Replay: applies card-state events that are already in the log to their projections (and the
   * customer index), exactly as `applyCardEvents` would have, without appending them again.
   * @returns per card projection key touched, whether it holds a state now (false: not worth keeping)
   */
  async replayCardEvents(events: readonly CardStateEvent[]): Promise<Map<string, boolean>> {
    // One compare-and-set per card (sent together), so a live write to one card only makes that
    // card try again, not the whole batch. Cards are independent: order matters only within one.
    const byCard = new Map<string, CardStateEvent[]>();
    for (const event of events) {
      const key = this.#keys.card(refOf(event));
      const group = byCard.get(key);
      if (group) group.push(event);
      else byCard.set(key, [event]);
    }
    const results = await Promise.all([...byCard.values()].map((group) => this.#applyCardEvents(group, { replay: true })));
    for (const key of byCard.keys()) this.#near?.invalidate(key);
    return new Map(results.flatMap(({ written }) => [...written]));
  }

  async #applyCardEvents(
    events: readonly CardStateEvent[],
    opts: { replay: boolean; release?: readonly OwnedMarker[]; notice?: RefreshNotice },
  ): Promise<{ result: Array<number | string>; written: Map<string, boolean> }> {
    for (let attempt = 1; ; attempt++) {
      const refs = events.map((e) => refOf(e));
      const shard = this.#shardOf([...refs, ...(opts.release ?? []).map((m) => m.ref)]);
      const cardKeys = refs.map((ref) => this.#keys.card(ref));
      const raw = cardKeys.length > 0 ? await this.#redis.mget(...cardKeys) : [];
      const keys: string[] = [this.#keys.eventStream(shard)];
      const keyIndex = (key: string) => {
        const at = keys.indexOf(key);
        return (at === -1 ? keys.push(key) : at + 1) as number; // Lua's KEYS are 1-based
      };
      const now = this.#clock.now();
      // Several events may touch the same card: evolve them in order from what was read.
      const working = new Map<string, { expect: string | false; state: CardState | undefined; first: boolean }>();
      const written = new Map<string, boolean>();
      const entries: PlanEntry[] = events.map((event, i) => {
        const cardKey = cardKeys[i]!;
        let slot = working.get(cardKey);
        if (!slot) {
          slot = { expect: raw[i] ?? false, state: decodeCardState(raw[i] ?? null), first: true };
          working.set(cardKey, slot);
        }
        // Only a card's first entry is compared with what was read; later entries of the same
        // card follow from the earlier ones inside the script.
        const check = slot.first;
        slot.first = false;
        const expect = slot.expect;
        const policy = this.#retentionFor(event.data.cardKey);
        // Live: what Redis still holds is what the event applies to. Replay: what Redis held when
        // the event happened (a state past its keep-until then had expired), as live saw it.
        const next = opts.replay ? evolveKept(slot.state, event, policy) : evolve(slot.state, event);
        slot.state = next;
        const until = keepUntil(next, policy);
        const px = until === null ? 0 : until - now;
        const value = px > 0 ? JSON.stringify(next) : false;
        slot.expect = value;
        written.set(cardKey, value !== false);
        const entry: PlanEntry = { type: event.type, data: JSON.stringify(event.data), set: { k: keyIndex(cardKey), check, expect, value, px: Math.max(1, Math.ceil(px)) } };
        if (value !== false) entry.index = this.#indexEntries(shard, refs[i]!, cardKey, next, px, keyIndex);
        else entry.unindex = [{ k: keyIndex(this.#keys.customerCards(refs[i]!.workspaceId, refs[i]!.customerId)), member: cardKey }];
        return entry;
      });
      const release = (opts.release ?? []).map((m) => ({ k: keyIndex(this.#keys.inflight(m.ref)), owner: m.owner }));
      const result = await this.#run(keys, entries, { release, notice: opts.notice, replay: opts.replay, channel: this.#keys.refreshChannel(shard) });
      if (result[0] === 1) return { result, written };
      if (attempt >= (opts.replay ? MAX_REPLAY_CAS_ATTEMPTS : MAX_CAS_ATTEMPTS)) throw new Error('card state kept changing under a concurrent writer; gave up');
    }
  }

  /**
   * Appends a TTL-override event and updates the override hash atomically. The hash field of
   * the event's card key is `evolveOverrides` of that one event: later events replace earlier ones.
   * @returns the stream id of the appended event
   */
  async applyOverrideEvent(event: TtlOverrideEvent): Promise<string> {
    const keys = [this.#keys.overrideEvents, this.#keys.ttlOverrides];
    const entry: PlanEntry = { type: event.type, data: JSON.stringify(event.data) };
    const seconds = evolveOverrides(NO_TTL_OVERRIDES, event).get(event.data.cardKey);
    if (seconds !== undefined) entry.hset = { k: 2, f: event.data.cardKey, v: String(seconds) };
    else entry.hdel = { k: 2, f: event.data.cardKey };
    const result = await this.#run(keys, [entry], {});
    this.#onAppended(event.type);
    return String(result[1]);
  }

  /**
   * Replay: replaces the override hash with `overrides`, folded from the log up to and including
   * the event `lastEventId` ('' for an empty log). Writes nothing and returns false when the log
   * has grown since (read on, then try again); `force` writes regardless.
   */
  async replaceOverrides(overrides: TtlOverrides, lastEventId: string, force = false): Promise<boolean> {
    if (force) {
      const multi = this.#redis.multi().del(this.#keys.ttlOverrides);
      if (overrides.size > 0) multi.hset(this.#keys.ttlOverrides, Object.fromEntries([...overrides].map(([k, v]) => [k, String(v)])));
      await multi.exec();
      return true;
    }
    const pairs = [...overrides].flatMap(([cardKey, seconds]) => [cardKey, String(seconds)]);
    const done = await this.#redis.cardproxyReplaceOverrides(this.#keys.overrideEvents, this.#keys.ttlOverrides, lastEventId, ...pairs);
    return done === 1;
  }

  /**
   * The customers the look-up index knows by this identifier (an email is matched lower-cased):
   * the union of every shard's index (one command per shard, since each is in its own slot).
   */
  async findCustomers(kind: CustomerIndexKind, value: string): Promise<CustomerRef[]> {
    const needle = kind === 'email' ? value.toLowerCase() : value;
    const perShard = await Promise.all(this.#keys.eventStreams.map((_, shard) => this.#redis.smembers(this.#keys.customerIndex(shard, kind, needle))));
    return [...new Set(perShard.flat())].flatMap((member) => {
      const at = member.indexOf('\n');
      return at === -1 ? [] : [{ workspaceId: member.slice(0, at), customerId: member.slice(at + 1) }];
    });
  }

  /** The cards cached for one customer (some may have expired since they were listed). */
  async customerCards(customer: CustomerRef): Promise<CardRef[]> {
    const members = await this.#redis.smembers(this.#keys.customerCards(customer.workspaceId, customer.customerId));
    return members.flatMap((key) => {
      const ref = this.#keys.parseCard(key);
      return ref && ref.workspaceId === customer.workspaceId && ref.customerId === customer.customerId ? [ref] : [];
    });
  }

  /** The current run-time TTL overrides, card key → seconds. */
  async readOverrides(): Promise<Map<string, number>> {
    const all = await this.#redis.hgetall(this.#keys.ttlOverrides);
    return new Map(Object.entries(all).map(([k, v]) => [k, Number(v)]));
  }

  /** One card's run-time TTL override, or null. */
  async readOverride(cardKey: string): Promise<number | null> {
    const value = await this.#redis.hget(this.#keys.ttlOverrides, cardKey);
    return value === null ? null : Number(value);
  }

  /** The one shard all of `refs` are in (an atomic write cannot span shards: they are different slots). */
  #shardOf(refs: readonly CardRef[]): number {
    const shard = refs.length === 0 ? 0 : this.#keys.shardOf(refs[0]!.workspaceId, refs[0]!.customerId);
    for (const ref of refs) {
      if (this.#keys.shardOf(ref.workspaceId, ref.customerId) !== shard) throw new Error('one atomic card write cannot span event shards');
    }
    return shard;
  }

  #indexEntries(shard: number, ref: CardRef, cardKey: string, state: CardState, px: number, keyIndex: (key: string) => number) {
    const member = `${ref.workspaceId}\n${ref.customerId}`;
    const ttl = Math.max(1, Math.ceil(px));
    const index: { k: number; member: string; px: number }[] = [
      { k: keyIndex(this.#keys.customerCards(ref.workspaceId, ref.customerId)), member: cardKey, px: ttl },
      { k: keyIndex(this.#keys.customerIndex(shard, 'id', ref.customerId)), member, px: ttl },
    ];
    if (state.customerEmail) index.push({ k: keyIndex(this.#keys.customerIndex(shard, 'email', state.customerEmail.toLowerCase())), member, px: ttl });
    if (state.customerExternalId) index.push({ k: keyIndex(this.#keys.customerIndex(shard, 'externalId', state.customerExternalId)), member, px: ttl });
    return index;
  }

  async #run(
    keys: string[],
    entries: PlanEntry[],
    opts: { release?: { k: number; owner: string }[]; notice?: RefreshNotice | undefined; replay?: boolean; channel?: string },
  ): Promise<Array<number | string>> {
    const minId = `${Math.max(0, this.#clock.now() - this.#retentionMs)}-0`;
    const plan = {
      minId,
      replay: opts.replay === true,
      entries,
      release: opts.release && opts.release.length > 0 ? opts.release : false,
      channel: opts.channel ?? false,
      message: opts.notice ? JSON.stringify(opts.notice) : false,
    };
    return this.#redis.cardproxyApplyEvents(keys.length, ...keys, JSON.stringify(plan));
  }
}

function refOf(event: CardStateEvent): CardRef {
  const { workspaceId, customerId, threadId, cardKey } = event.data;
  return { workspaceId, customerId, threadId, cardKey };
}
