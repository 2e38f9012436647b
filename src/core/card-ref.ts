/**
 * Identifies one cached card. `threadId` is null for cards of `customer` scope, so the same cached
 * card serves every thread of the customer; `thread` scope keeps one per thread.
 */
export interface CardRef {
  readonly workspaceId: string;
  readonly customerId: string;
  readonly threadId: string | null;
  readonly cardKey: string;
}

export type CardScope = 'customer' | 'thread';

/** The cache identity of a card requested in a given context, by the card's scope. */
export function cardRefFor(
  scope: CardScope,
  context: { workspaceId: string; customerId: string; threadId: string | null },
  cardKey: string,
): CardRef {
  return {
    workspaceId: context.workspaceId,
    customerId: context.customerId,
    threadId: scope === 'thread' ? context.threadId : null,
    cardKey,
  };
}

/**
 * Whether a request in `contextThreadId`'s context (null: outside threads) is in the card's own
 * context, the one it is cached for: outside threads for a `customer`-scope card, its thread for a
 * `thread`-scope one. A `customer`-scope card asked for in a thread is not.
 */
export function isOwnContext(ref: CardRef, contextThreadId: string | null): boolean {
  return ref.threadId === contextThreadId;
}

/** A stable string for a CardRef, used for in-process maps and notifications. */
export function cardRefId(ref: CardRef): string {
  return JSON.stringify([ref.workspaceId, ref.customerId, ref.threadId, ref.cardKey]);
}
