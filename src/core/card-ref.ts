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

/** A stable string for a CardRef, used for in-process maps and notifications. */
export function cardRefId(ref: CardRef): string {
  return JSON.stringify([ref.workspaceId, ref.customerId, ref.threadId, ref.cardKey]);
}
