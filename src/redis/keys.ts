/**
 * The Redis key layout. The event log is split into `shardCount` streams (SPEC 13); all cards of
 * one customer belong to one shard (`shardOf`), and every key written together with a shard's
 * events carries the hash tag `{<eventStream(shard)>}`: the tag text equals the stream's name, so
 * a stream and everything derived from it share one slot of a Redis Cluster, and a `/cards`
 * request or an atomic "append event + update projection" touches one slot. Ids are URI-encoded
 * so that `:`, `{` and `}` in them cannot break the layout or the hash tag.
 */
import type { CardRef } from '../core/card-ref.js';
import { CustomerKeyMemo, type ContextKeyBuilder, type KeyBuilder } from './customer-key-memo.js';

const enc = encodeURIComponent;

/** The identifiers the customer look-up index knows a customer by. */
export type CustomerIndexKind = 'id' | 'email' | 'externalId';

export interface KeyLayout {
  readonly prefix: string;
  /** How many event streams the log is split into (`events.shards`). */
  readonly shardCount: number;
  /** The shard of a customer's cards: a stable hash of the customer, 0 with one shard. */
  shardOf(workspaceId: string, customerId: string): number;
  /**
   * A shard's event stream: `<prefix>:events` with one shard (SPEC 6), else `<prefix>:events-<shard>`.
   */
  eventStream(shard: number): string;
  /** All event streams, in shard order. */
  readonly eventStreams: readonly string[];
  /** The stream `ttl.override_*` events are appended to: shard 0's, in the override hash's slot. */
  readonly overrideEvents: string;
  /** Run-time TTL overrides, a hash of card key → seconds (derived from the log), in shard 0's slot. */
  readonly ttlOverrides: string;
  /** A shard's pub/sub channel (SPUBLISH, in the shard's slot) on which refresh outcomes are announced. */
  refreshChannel(shard: number): string;
  /**
   * A counter that replay bumps when it has rewritten projections (without appending events), so
   * that every process's near cache drops what it holds. Holds no card state.
   */
  readonly cacheEpoch: string;
  /** Projection of one card's events. */
  card(ref: CardRef): string;
  /** One card's components (the JSON array as served), beside its projection. */
  components(ref: CardRef): string;
  /** Marks a card whose refresh is queued or running (single-flight). */
  inflight(ref: CardRef): string;
  /**
   * The served markers of one (customer, thread) context: a hash of card key → when Plain's copy
   * of that card, answered in this context, expires and what it showed (see served-marker.ts).
   */
  served(workspaceId: string, customerId: string, contextThreadId: string | null): string;
  /**
   * The contexts (thread ids) in which a card was answered with its placeholder or error
   * components: a set whose members are `servedContextMember(threadId)` (see served-markers.ts).
   */
  awaitingReload(workspaceId: string, customerId: string, cardKey: string): string;
  /**
   * One shard's customer look-up index by customer id (across workspaces), email (lower-cased by
   * the caller) or external id: a set of `workspace\ncustomer`, expiring with the customer's last
   * card. A look-up unions the sets of all shards.
   */
  customerIndex(shard: number, kind: CustomerIndexKind, value: string): string;
  /** The card projection keys of one customer: a set, expiring with its last card. */
  customerCards(workspaceId: string, customerId: string): string;
  /** The card a projection key (as built by `card`) belongs to, or null for any other key. */
  parseCard(key: string): CardRef | null;
  /**
   * SCAN patterns of all derived keys (everything replay rebuilds), including those of the
   * layout before the log was sharded (a customer hash tag, an unsharded index and override hash).
   */
  readonly derivedPatterns: readonly string[];
  /** A Plain webhook delivery already accepted (de-duplication by envelope id, 24 h). */
  webhookDelivery(id: string): string;
  /** The BullMQ prefix for an upstream group's refresh queue: hash-tagged per queue. */
  queuePrefix(groupName: string): string;
}

/** Characters of warm-path keys kept for recent customers (about 2 bytes each: 8 MB at most). */
const MEMO_CHARS = 4_000_000;

/** The most event-log shards a deployment may have (`events.shards`). */
export const MAX_EVENT_SHARDS = 1024;

export function keyLayout(prefix: string, shardCount = 1): KeyLayout {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > MAX_EVENT_SHARDS) {
    throw new RangeError(`shardCount must be an integer from 1 to ${MAX_EVENT_SHARDS}, got ${shardCount}`);
  }
  const eventStream = (shard: number) => (shardCount === 1 ? `${prefix}:events` : `${prefix}:events-${shard}`);
  const eventStreams = Object.freeze(Array.from({ length: shardCount }, (_, shard) => eventStream(shard)));
  const shardTag = (shard: number) => `${prefix}:{${eventStreams[shard]!}}`;
  const shardOf = (workspaceId: string, customerId: string) => (shardCount === 1 ? 0 : fnv1a32(`${workspaceId}\n${customerId}`) % shardCount);
  // A customer's keys: `<prefix>:{<its shard's stream>}:<kind>:<workspace>:<customer>[:...]`.
  const customerKey = (kind: string, workspaceId: string, customerId: string) =>
    `${shardTag(shardOf(workspaceId, customerId))}:${kind}:${enc(workspaceId)}:${enc(customerId)}`;
  const cardSuffix = (ref: CardRef) => (ref.threadId === null ? enc(ref.cardKey) : `${enc(ref.cardKey)}:${enc(ref.threadId)}`);
  const cardScoped = (kind: string, ref: CardRef) => `${customerKey(kind, ref.workspaceId, ref.customerId)}:${cardSuffix(ref)}`;
  // The keys a warm request builds (projections and served-marker hash), kept for recent customers.
  const keys = new CustomerKeyMemo(MEMO_CHARS);
  const buildCardKey: KeyBuilder = (workspaceId, customerId, threadId, cardKey) => cardScoped('card', { workspaceId, customerId, threadId, cardKey });
  const buildServedKey: ContextKeyBuilder = (workspaceId, customerId, contextThreadId) =>
    `${customerKey('served', workspaceId, customerId)}:${contextThreadId === null ? '-' : enc(contextThreadId)}`;
  // Encoded parts hold no ':', '{' or '}', and the prefix no ':' (KEY_PREFIX_PATTERN).
  const cardKeyPattern = new RegExp(`^${escapeRegExp(prefix)}:\\{[^{}]*\\}:card:([^:]*):([^:]*):([^:]+)(?::([^:]+))?$`);
  const parseCard = (key: string): CardRef | null => {
    const match = cardKeyPattern.exec(key);
    if (!match) return null;
    try {
      return {
        workspaceId: decodeURIComponent(match[1]!),
        customerId: decodeURIComponent(match[2]!),
        cardKey: decodeURIComponent(match[3]!),
        threadId: match[4] === undefined ? null : decodeURIComponent(match[4]),
      };
    } catch {
      return null; // not URI-encoded by us
    }
  };
  return Object.freeze({
    prefix,
    shardCount,
    shardOf,
    eventStream: (shard: number) => eventStreams[checkShard(shard, shardCount)]!,
    eventStreams,
    overrideEvents: eventStream(0),
    ttlOverrides: `${shardTag(0)}:ttl-overrides`,
    refreshChannel: (shard: number) => `${shardTag(checkShard(shard, shardCount))}:refresh-outcomes`,
    cacheEpoch: `${prefix}:cache-epoch`,
    card: (ref: CardRef) => keys.key(ref.workspaceId, ref.customerId, ref.threadId, ref.cardKey, buildCardKey),
    components: (ref: CardRef) => cardScoped('components', ref),
    inflight: (ref: CardRef) => cardScoped('inflight', ref),
    served: (workspaceId: string, customerId: string, contextThreadId: string | null) => keys.contextKey(workspaceId, customerId, contextThreadId, buildServedKey),
    awaitingReload: (workspaceId: string, customerId: string, cardKey: string) =>
      `${customerKey('awaiting-reload', workspaceId, customerId)}:${enc(cardKey)}`,
    customerIndex: (shard: number, kind: CustomerIndexKind, value: string) =>
      `${shardTag(checkShard(shard, shardCount))}:customer-index:${kind}:${enc(value)}`,
    customerCards: (workspaceId: string, customerId: string) => customerKey('cards', workspaceId, customerId),
    parseCard,
    derivedPatterns: [
      `${prefix}:{*}:card:*`,
      `${prefix}:{*}:components:*`,
      `${prefix}:{*}:cards:*`,
      `${prefix}:{*}:customer-index:*`,
      `${prefix}:{*}:ttl-overrides`,
      // The layout before the log was sharded.
      `${prefix}:{*}:cards`,
      `${prefix}:customer-index:*`,
      `${prefix}:ttl-overrides`,
    ],
    webhookDelivery: (id: string) => `${prefix}:webhook-delivery:${enc(id)}`,
    queuePrefix: (groupName: string) => `${prefix}:{refresh-${groupName}}`,
  });
}

function checkShard(shard: number, shardCount: number): number {
  if (!Number.isInteger(shard) || shard < 0 || shard >= shardCount) throw new RangeError(`no event shard ${shard} (of ${shardCount})`);
  return shard;
}

/** FNV-1a, 32 bits, over the UTF-8 bytes of `text`: cheap, stable across processes and versions. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
