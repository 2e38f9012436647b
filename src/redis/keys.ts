/**
 * The Redis key layout. Every key one `/cards` request reads shares the hash tag
 * `{<workspace>:<customer>}`, so a request touches one slot of a Redis Cluster. Ids are
 * URI-encoded so that `:`, `{` and `}` in them cannot break the layout or the hash tag.
 */
import type { CardRef } from '../core/card-ref.js';

const enc = encodeURIComponent;

export interface KeyLayout {
  readonly prefix: string;
  /** The event log (SPEC section 6): `<prefix>:events`. */
  readonly events: string;
  /** Run-time TTL overrides, a hash of card key → seconds (derived from the log). */
  readonly ttlOverrides: string;
  /** Pub/sub channel on which refresh outcomes are announced to waiting requests. */
  readonly refreshChannel: string;
  /** Projection of one card's events. */
  card(ref: CardRef): string;
  /** Marks a card whose refresh is queued or running (single-flight). */
  inflight(ref: CardRef): string;
  /** When Plain's copy of a card, answered in a (customer, thread) context, expires. */
  served(workspaceId: string, customerId: string, contextThreadId: string | null, cardKey: string): string;
  /** Customer look-up index by email or external id: a set of `workspace\ncustomer`. */
  customerIndex(kind: 'email' | 'externalId', value: string): string;
  /** SCAN patterns of all derived keys (everything replay rebuilds). */
  readonly derivedPatterns: readonly string[];
  /** The BullMQ prefix for an upstream group's refresh queue: hash-tagged per queue. */
  queuePrefix(groupName: string): string;
}

export function keyLayout(prefix: string): KeyLayout {
  const customerTag = (workspaceId: string, customerId: string) => `${prefix}:{${enc(workspaceId)}:${enc(customerId)}}`;
  const cardSuffix = (ref: CardRef) => (ref.threadId === null ? enc(ref.cardKey) : `${enc(ref.cardKey)}:${enc(ref.threadId)}`);
  return Object.freeze({
    prefix,
    events: `${prefix}:events`,
    ttlOverrides: `${prefix}:ttl-overrides`,
    refreshChannel: `${prefix}:refresh-outcomes`,
    card: (ref: CardRef) => `${customerTag(ref.workspaceId, ref.customerId)}:card:${cardSuffix(ref)}`,
    inflight: (ref: CardRef) => `${customerTag(ref.workspaceId, ref.customerId)}:inflight:${cardSuffix(ref)}`,
    served: (workspaceId: string, customerId: string, contextThreadId: string | null, cardKey: string) =>
      `${customerTag(workspaceId, customerId)}:served:${contextThreadId === null ? '-' : enc(contextThreadId)}:${enc(cardKey)}`,
    customerIndex: (kind: 'email' | 'externalId', value: string) => `${prefix}:customer-index:${kind}:${enc(value)}`,
    derivedPatterns: [`${prefix}:{*}:card:*`, `${prefix}:customer-index:*`, `${prefix}:ttl-overrides`],
    queuePrefix: (groupName: string) => `${prefix}:{refresh-${groupName}}`,
  });
}
