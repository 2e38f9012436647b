/**
 * Every change of card state goes through here: events are appended to the card's shard and its
 * projection updated in one command (see card-commands.ts), compare-and-set: each card is read,
 * evolved (src/core/card-state.ts) and written back only if Redis still holds what was read, else
 * read again. Replay goes through the same evolve and write, without appending.
 */
import type { CardRef } from '../core/card-ref.js';
import type { CardStateEvent, TtlOverrideEvent } from '../core/card-events.js';
import { evolve, evolveKept, keepUntil, type CardState, type RetentionPolicy } from '../core/card-state.js';
import type { Clock } from '../core/clock.js';
import { evolveOverrides, NO_TTL_OVERRIDES, type TtlOverrides } from '../core/ttl-overrides.js';
import type { RefreshNotice } from './single-flight.js';
import { decodeProjection, encodeComponents, encodeProjection } from './card-codec.js';
import { CardCommands, type CardWrite, type StreamTarget, type WriteResult } from './card-commands.js';
import type { CommandClient } from './commands/index.js';
import type { KeyLayout } from './keys.js';

/** In-flight markers a refresh job releases with its outcome: the job's id and its cards. */
export interface OwnedMarkers {
  readonly owner: string;
  readonly refs: readonly CardRef[];
}

const MAX_CAS_ATTEMPTS = 8;
/** Replay races every live writer while it rebuilds, so it tries harder (per card) before giving up. */
const MAX_REPLAY_CAS_ATTEMPTS = 25;

type WriteMode =
  | { readonly kind: 'append' }
  | { readonly kind: 'outcome'; readonly release: OwnedMarkers; readonly notice: RefreshNotice }
  | { readonly kind: 'replay' };

export class CardWriter {
  readonly #client: CommandClient;
  readonly #commands: CardCommands;
  readonly #keys: KeyLayout;
  readonly #clock: Clock;
  readonly #retentionMs: number;
  readonly #retentionFor: (cardKey: string) => RetentionPolicy;

  constructor(opts: {
    client: CommandClient;
    keys: KeyLayout;
    clock: Clock;
    retentionSeconds: number;
    retentionFor: (cardKey: string) => RetentionPolicy;
  }) {
    this.#client = opts.client;
    this.#commands = new CardCommands(opts.client);
    this.#keys = opts.keys;
    this.#clock = opts.clock;
    this.#retentionMs = opts.retentionSeconds * 1000;
    this.#retentionFor = opts.retentionFor;
  }

  /**
   * Appends card-state events (one customer's) and updates their projections atomically.
   * @returns the appended events' ids and, per projection key, whether a state is kept
   */
  append(events: readonly CardStateEvent[]): Promise<Written> {
    return this.#write(events, { kind: 'append' });
  }

  /** A refresh job's outcome: events, projections, its markers released and `notice` published, atomically. */
  recordRefreshOutcome(events: readonly CardStateEvent[], release: OwnedMarkers, notice: RefreshNotice): Promise<Written> {
    return this.#write(events, { kind: 'outcome', release, notice });
  }

  /**
   * Replay: applies events already in the log to their projections (and the look-up index) as
   * the live writes did, one card per command (a live write to one card only makes that card
   * try again). @returns per projection key, whether it holds a state now
   */
  async replay(events: readonly CardStateEvent[]): Promise<Map<string, boolean>> {
    const results = await Promise.all([...byCard(this.#keys, events).values()].map((card) => this.#write(card.events, { kind: 'replay' })));
    return new Map(results.flatMap(({ kept }) => [...kept]));
  }

  /** Appends a TTL-override event and updates the override hash atomically. @returns its id */
  setOverride(event: TtlOverrideEvent): Promise<string> {
    const seconds = evolveOverrides(NO_TTL_OVERRIDES, event).get(event.data.cardKey) ?? null;
    return this.#commands.setTtlOverride({
      target: this.#target(this.#keys.overrideEvents),
      hash: this.#keys.ttlOverrides,
      type: event.type,
      data: JSON.stringify(event.data),
      cardKey: event.data.cardKey,
      seconds,
    });
  }

  /**
   * Replay: replaces the override hash with `overrides`, folded from the log up to and including
   * the event `lastEventId` ('' for an empty log). Writes nothing and returns false when the log
   * has grown since (read on, then try again); `force` writes regardless.
   */
  async replaceOverrides(overrides: TtlOverrides, lastEventId: string, force = false): Promise<boolean> {
    if (!force) return this.#commands.replaceOverrides(this.#keys.overrideEvents, this.#keys.ttlOverrides, lastEventId, overrides);
    const multi = this.#client.multi().del(this.#keys.ttlOverrides);
    if (overrides.size > 0) multi.hset(this.#keys.ttlOverrides, Object.fromEntries([...overrides].map(([k, v]) => [k, String(v)])));
    await multi.exec();
    return true;
  }

  #target(stream: string): StreamTarget {
    return { stream, minId: `${Math.max(0, this.#clock.now() - this.#retentionMs)}-0` };
  }

  async #write(events: readonly CardStateEvent[], mode: WriteMode): Promise<Written> {
    const cards = [...byCard(this.#keys, events).values()];
    const refs = [...cards.map((c) => c.ref), ...(mode.kind === 'outcome' ? mode.release.refs : [])];
    const shard = oneShard(this.#keys, refs);
    for (let attempt = 1; ; attempt++) {
      const read = cards.length > 0 ? await this.#client.mget(...cards.map((c) => c.projectionKey)) : [];
      const now = this.#clock.now();
      const writes = cards.map((card, i) => this.#cardWrite(shard, card, read[i] ?? null, now, mode.kind === 'replay'));
      const result = await this.#send(shard, writes, mode);
      if (result.ok) return { ids: result.ids, kept: new Map(writes.map((w) => [w.projectionKey, w.projection !== null])) };
      if (attempt >= (mode.kind === 'replay' ? MAX_REPLAY_CAS_ATTEMPTS : MAX_CAS_ATTEMPTS)) {
        throw new Error('card state kept changing under a concurrent writer; gave up');
      }
    }
  }

  #send(shard: number, cards: CardWrite[], mode: WriteMode): Promise<WriteResult> {
    switch (mode.kind) {
      case 'append':
        return this.#commands.appendCardEvents(this.#target(this.#keys.eventStream(shard)), cards);
      case 'outcome':
        return this.#commands.recordRefreshOutcome({
          target: this.#target(this.#keys.eventStream(shard)),
          channel: this.#keys.refreshChannel(shard),
          release: { markers: mode.release.refs.map((ref) => this.#keys.inflight(ref)), owner: mode.release.owner },
          notice: JSON.stringify(mode.notice),
          cards,
        });
      case 'replay':
        return this.#commands.replayCards(cards);
      default: {
        const unreachable: never = mode;
        return unreachable;
      }
    }
  }

  /** One card's write: its events evolved from the projection `raw` that was read. */
  #cardWrite(shard: number, card: CardEvents, raw: string | null, now: number, replay: boolean): CardWrite {
    const { ref } = card;
    const policy = this.#retentionFor(ref.cardKey);
    // The projection has no components; they are only written when an event brings new ones.
    const read = decodeProjection(raw);
    let state: CardState | undefined = read && { ...read, data: read.data && { ...read.data, components: null } };
    let components: string | undefined;
    for (const event of card.events) {
      // Live: what Redis still holds is what the event applies to. Replay: what Redis held when
      // the event happened (a state past its keep-until then had expired), as live saw it.
      state = replay ? evolveKept(state, event, policy) : evolve(state, event);
      if (event.type === 'card.refreshed') components = encodeComponents(state.data!.components);
    }
    const until = keepUntil(state!, policy);
    const px = until === null ? 0 : until - now;
    const kept = px > 0 ? state! : null;
    const indexKeys = kept === null ? [] : this.#indexKeys(shard, ref, kept);
    return {
      projectionKey: card.projectionKey,
      componentsKey: this.#keys.components(ref),
      cardSetKey: this.#keys.customerCards(ref.workspaceId, ref.customerId),
      indexKeys,
      indexMember: `${ref.workspaceId}\n${ref.customerId}`,
      expect: raw,
      projection: kept === null ? null : encodeProjection(kept),
      px: Math.max(1, Math.ceil(px)),
      components: kept?.data == null ? { mode: 'none' } : components !== undefined ? { mode: 'set', json: components } : { mode: 'keep' },
      events: replay ? [] : card.events.map((e) => ({ type: e.type, data: JSON.stringify(e.data) })),
    };
  }

  #indexKeys(shard: number, ref: CardRef, state: CardState): string[] {
    const keys = [this.#keys.customerIndex(shard, 'id', ref.customerId)];
    if (state.customerEmail) keys.push(this.#keys.customerIndex(shard, 'email', state.customerEmail.toLowerCase()));
    if (state.customerExternalId) keys.push(this.#keys.customerIndex(shard, 'externalId', state.customerExternalId));
    return keys;
  }
}

/** What a write did: the ids of the events it appended and, per projection key, whether a state is kept. */
export interface Written {
  readonly ids: string[];
  readonly kept: Map<string, boolean>;
}

interface CardEvents {
  readonly ref: CardRef;
  readonly projectionKey: string;
  readonly events: CardStateEvent[];
}

/** Events grouped by card, in order (several events may touch one card: they are evolved in turn). */
function byCard(keys: KeyLayout, events: readonly CardStateEvent[]): Map<string, CardEvents> {
  const cards = new Map<string, CardEvents>();
  for (const event of events) {
    const ref = refOf(event);
    const projectionKey = keys.card(ref);
    const card = cards.get(projectionKey);
    if (card) card.events.push(event);
    else cards.set(projectionKey, { ref, projectionKey, events: [event] });
  }
  return cards;
}

/** The one shard all of `refs` are in (one atomic write cannot span shards: they are different slots). */
function oneShard(keys: KeyLayout, refs: readonly CardRef[]): number {
  const shard = refs.length === 0 ? 0 : keys.shardOf(refs[0]!.workspaceId, refs[0]!.customerId);
  for (const ref of refs) {
    if (keys.shardOf(ref.workspaceId, ref.customerId) !== shard) throw new Error('one atomic card write cannot span event shards');
  }
  return shard;
}

function refOf(event: CardStateEvent): CardRef {
  const { workspaceId, customerId, threadId, cardKey } = event.data;
  return { workspaceId, customerId, threadId, cardKey };
}

