/**
 * The card cache in Redis: reads for `/cards` and the atomic "append event + update projection"
 * write that every state change goes through. No resolution policy lives here.
 */
import type { Redis, Result } from 'ioredis';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import type { CardRef } from '../core/card-ref.js';
import { evolve, keepUntil, type CardState, type RetentionPolicy } from '../core/card-state.js';
import type { CardEvent, CardStateEvent } from '../core/card-events.js';
import { APPLY_EVENTS_LUA } from './lua-scripts.js';
import type { KeyLayout } from './keys.js';

/**
 * Shape check for states read back from Redis. Components were validated when they were loaded
 * from the upstream; re-validating every component on every warm read would cost more than it
 * protects, so only the envelope is checked here. A state that fails the check counts as absent.
 */
const StoredCardState = z.object({
  data: z
    .object({ components: z.array(z.any()).nullable(), ttlSeconds: z.number(), fetchedAt: z.number(), upstream: z.string() })
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
  set?: { k: number; expect: string | false; value: string | false; px: number };
  hset?: { k: number; f: string; v: string };
  hdel?: { k: number; f: string };
  index?: { k: number; member: string; px: number }[];
}

const MAX_CAS_ATTEMPTS = 8;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cardproxyApplyEvents(numKeys: number, ...args: string[]): Result<Array<number | string>, Context>;
  }
}

export class CardStore {
  readonly #redis: Redis;
  readonly #keys: KeyLayout;
  readonly #clock: Clock;
  readonly #retentionMs: number;
  readonly #retentionFor: (cardKey: string) => RetentionPolicy;

  constructor(opts: {
    redis: Redis;
    keys: KeyLayout;
    clock: Clock;
    retentionSeconds: number;
    retentionFor: (cardKey: string) => RetentionPolicy;
  }) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#clock = opts.clock;
    this.#retentionMs = opts.retentionSeconds * 1000;
    this.#retentionFor = opts.retentionFor;
    if (typeof (this.#redis as { cardproxyApplyEvents?: unknown }).cardproxyApplyEvents !== 'function') {
      this.#redis.defineCommand('cardproxyApplyEvents', { lua: APPLY_EVENTS_LUA });
    }
  }

  get keys(): KeyLayout {
    return this.#keys;
  }

  /**
   * The one round trip of a `/cards` request: the cached states of its cards and, for manual
   * reload detection, when Plain's copies expire. All keys share the customer's hash tag.
   */
  async readForRequest(
    refs: readonly CardRef[],
    servedKeys: readonly string[],
  ): Promise<{ states: (CardState | undefined)[]; servedUntil: (number | null)[] }> {
    const values = await this.#redis.mget(...refs.map((ref) => this.#keys.card(ref)), ...servedKeys);
    const states = values.slice(0, refs.length).map(decodeCardState);
    const servedUntil = values.slice(refs.length).map((v) => (v === null ? null : Number(v)));
    return { states, servedUntil };
  }

  /** Reads card states (refresh worker, invalidation, replay). */
  async readStates(refs: readonly CardRef[]): Promise<(CardState | undefined)[]> {
    if (refs.length === 0) return [];
    const values = await this.#redis.mget(...refs.map((ref) => this.#keys.card(ref)));
    return values.map(decodeCardState);
  }

  /**
   * Records when Plain's copies of answered cards expire. Sent without waiting for the reply:
   * it is not on the response's critical path, and a lost marker only misses one reload.
   */
  markServed(entries: ReadonlyArray<{ key: string; until: number }>): Promise<unknown> {
    const now = this.#clock.now();
    const pipeline = this.#redis.pipeline();
    for (const { key, until } of entries) pipeline.set(key, String(until), 'PX', Math.max(1, until - now));
    return pipeline.exec();
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
    for (let attempt = 1; ; attempt++) {
      const refs = events.map((e) => refOf(e));
      const cardKeys = refs.map((ref) => this.#keys.card(ref));
      const raw = cardKeys.length > 0 ? await this.#redis.mget(...cardKeys) : [];
      const keys: string[] = [this.#keys.events];
      const keyIndex = (key: string) => {
        const at = keys.indexOf(key);
        return (at === -1 ? keys.push(key) : at + 1) as number; // Lua's KEYS are 1-based
      };
      // Several events may touch the same card: evolve them in order from what was read.
      const working = new Map<string, { expect: string | false; state: CardState | undefined }>();
      const entries: PlanEntry[] = events.map((event, i) => {
        const cardKey = cardKeys[i]!;
        let slot = working.get(cardKey);
        if (!slot) {
          slot = { expect: raw[i] ?? false, state: decodeCardState(raw[i] ?? null) };
          working.set(cardKey, slot);
        }
        const expect = slot.expect;
        const next = evolve(slot.state, event);
        slot.state = next;
        const until = keepUntil(next, this.#retentionFor(event.data.cardKey));
        const px = until === null ? 0 : until - this.#clock.now();
        const value = px > 0 ? JSON.stringify(next) : false;
        slot.expect = value;
        const entry: PlanEntry = { type: event.type, data: JSON.stringify(event.data), set: { k: keyIndex(cardKey), expect, value, px: Math.max(1, Math.ceil(px)) } };
        if (value !== false) entry.index = this.#indexEntries(refs[i]!, next, px, keyIndex);
        return entry;
      });
      const release = (opts.release ?? []).map((m) => ({ k: keyIndex(this.#keys.inflight(m.ref)), owner: m.owner }));
      const result = await this.#run(keys, entries, { release, notice: opts.notice });
      if (result[0] === 1) return result.slice(1).map(String);
      if (attempt >= MAX_CAS_ATTEMPTS) throw new Error('card state kept changing under a concurrent writer; gave up');
    }
  }

  /** Appends a TTL-override event and updates the override hash atomically. */
  async applyOverrideEvent(event: Extract<CardEvent, { type: 'ttl.override_set' | 'ttl.override_cleared' }>): Promise<string> {
    const keys = [this.#keys.events, this.#keys.ttlOverrides];
    const entry: PlanEntry = { type: event.type, data: JSON.stringify(event.data) };
    if (event.type === 'ttl.override_set') entry.hset = { k: 2, f: event.data.cardKey, v: String(event.data.ttlSeconds) };
    else entry.hdel = { k: 2, f: event.data.cardKey };
    const result = await this.#run(keys, [entry], {});
    return String(result[1]);
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

  #indexEntries(ref: CardRef, state: CardState, px: number, keyIndex: (key: string) => number) {
    const member = `${ref.workspaceId}\n${ref.customerId}`;
    const index: { k: number; member: string; px: number }[] = [];
    const ttl = Math.max(1, Math.ceil(px));
    if (state.customerEmail) index.push({ k: keyIndex(this.#keys.customerIndex('email', state.customerEmail.toLowerCase())), member, px: ttl });
    if (state.customerExternalId) index.push({ k: keyIndex(this.#keys.customerIndex('externalId', state.customerExternalId)), member, px: ttl });
    return index;
  }

  async #run(
    keys: string[],
    entries: PlanEntry[],
    opts: { release?: { k: number; owner: string }[]; notice?: RefreshNotice | undefined },
  ): Promise<Array<number | string>> {
    const minId = `${Math.max(0, this.#clock.now() - this.#retentionMs)}-0`;
    const plan = {
      minId,
      entries,
      release: opts.release && opts.release.length > 0 ? opts.release : false,
      channel: this.#keys.refreshChannel,
      message: opts.notice ? JSON.stringify(opts.notice) : false,
    };
    return this.#redis.cardproxyApplyEvents(keys.length, ...keys, JSON.stringify(plan));
  }
}

function refOf(event: CardStateEvent): CardRef {
  const { workspaceId, customerId, threadId, cardKey } = event.data;
  return { workspaceId, customerId, threadId, cardKey };
}
