/**
 * The Redis key layout. Every key one `/cards` request reads shares the hash tag
 * `{<workspace>:<customer>}`, so a request touches one slot of a Redis Cluster. Ids are
 * URI-encoded so that `:`, `{` and `}` in them cannot break the layout or the hash tag.
 */
import type { CardRef } from '../core/card-ref.js';

const enc = encodeURIComponent;

/** The identifiers the customer look-up index knows a customer by. */
export type CustomerIndexKind = 'id' | 'email' | 'externalId';

export interface KeyLayout {
  readonly prefix: string;
  /** The event log (SPEC section 6): `<prefix>:events`. */
  readonly events: string;
  /** Run-time TTL overrides, a hash of card key → seconds (derived from the log). */
  readonly ttlOverrides: string;
  /** Pub/sub channel on which refresh outcomes are announced to waiting requests. */
  readonly refreshChannel: string;
  /**
   * A counter that replay bumps when it has rewritten projections (without appending events), so
   * that every process's near cache drops what it holds. Holds no card state.
   */
  readonly cacheEpoch: string;
  /** Projection of one card's events. */
  card(ref: CardRef): string;
  /** Marks a card whose refresh is queued or running (single-flight). */
  inflight(ref: CardRef): string;
  /** When Plain's copy of a card, answered in a (customer, thread) context, expires. */
  served(workspaceId: string, customerId: string, contextThreadId: string | null, cardKey: string): string;
  /**
   * The contexts (thread ids) in which a card was answered with its placeholder or error
   * components: a set whose members are `servedContextMember(threadId)` (see served-markers.ts).
   */
  awaitingReload(workspaceId: string, customerId: string, cardKey: string): string;
  /**
   * Customer look-up index by customer id (across workspaces), email (lower-cased by the caller)
   * or external id: a set of `workspace\ncustomer`, expiring with the customer's last card.
   */
  customerIndex(kind: CustomerIndexKind, value: string): string;
  /** The card projection keys of one customer: a set, expiring with its last card. */
  customerCards(workspaceId: string, customerId: string): string;
  /** The card a projection key (as built by `card`) belongs to, or null for any other key. */
  parseCard(key: string): CardRef | null;
  /** SCAN patterns of all derived keys (everything replay rebuilds). */
  readonly derivedPatterns: readonly string[];
  /** A Plain webhook delivery already accepted (de-duplication by envelope id, 24 h). */
  webhookDelivery(id: string): string;
  /** The BullMQ prefix for an upstream group's refresh queue: hash-tagged per queue. */
  queuePrefix(groupName: string): string;
}

export function keyLayout(prefix: string): KeyLayout {
  const customerTag = (workspaceId: string, customerId: string) => `${prefix}:{${enc(workspaceId)}:${enc(customerId)}}`;
  const cardSuffix = (ref: CardRef) => (ref.threadId === null ? enc(ref.cardKey) : `${enc(ref.cardKey)}:${enc(ref.threadId)}`);
  // Encoded parts hold no ':', '{' or '}', and the prefix no ':' (KEY_PREFIX_PATTERN).
  const cardKeyPattern = new RegExp(`^${escapeRegExp(prefix)}:\\{([^:{}]*):([^:{}]*)\\}:card:([^:]+)(?::([^:]+))?$`);
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
    events: `${prefix}:events`,
    ttlOverrides: `${prefix}:ttl-overrides`,
    refreshChannel: `${prefix}:refresh-outcomes`,
    cacheEpoch: `${prefix}:cache-epoch`,
    card: (ref: CardRef) => `${customerTag(ref.workspaceId, ref.customerId)}:card:${cardSuffix(ref)}`,
    inflight: (ref: CardRef) => `${customerTag(ref.workspaceId, ref.customerId)}:inflight:${cardSuffix(ref)}`,
    served: (workspaceId: string, customerId: string, contextThreadId: string | null, cardKey: string) =>
      `${customerTag(workspaceId, customerId)}:served:${contextThreadId === null ? '-' : enc(contextThreadId)}:${enc(cardKey)}`,
    awaitingReload: (workspaceId: string, customerId: string, cardKey: string) =>
      `${customerTag(workspaceId, customerId)}:awaiting-reload:${enc(cardKey)}`,
    customerIndex: (kind: CustomerIndexKind, value: string) => `${prefix}:customer-index:${kind}:${enc(value)}`,
    customerCards: (workspaceId: string, customerId: string) => `${customerTag(workspaceId, customerId)}:cards`,
    parseCard,
    derivedPatterns: [`${prefix}:{*}:card:*`, `${prefix}:{*}:cards`, `${prefix}:customer-index:*`, `${prefix}:ttl-overrides`],
    webhookDelivery: (id: string) => `${prefix}:webhook-delivery:${enc(id)}`,
    queuePrefix: (groupName: string) => `${prefix}:{refresh-${groupName}}`,
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
