/** Card-state events for the contract suites. */
import type { CardRef } from '../../../src/core/card-ref.js';
import type { CardStateEvent } from '../../../src/core/card-events.js';

export const ref = (customerId: string, cardKey = 'alpha', threadId: string | null = null): CardRef => ({ workspaceId: 'w_1', customerId, threadId, cardKey });

export function refreshed(card: CardRef, at: number, text: string, email: string | null = `${card.customerId}@example.com`): CardStateEvent {
  return {
    type: 'card.refreshed',
    data: {
      ...card,
      customerEmail: email,
      customerExternalId: `ext-${card.customerId}`,
      components: [{ componentText: { text } }],
      ttlSeconds: 300,
      fetchedAt: new Date(at).toISOString(),
      upstream: 'legacy',
      durationMs: 5,
    },
  };
}

export function failed(card: CardRef, at: number, detail: string): CardStateEvent {
  return {
    type: 'card.refresh_failed',
    data: { ...card, upstream: 'legacy', errorKind: 'retriable', detail, status: 503, failedAt: new Date(at).toISOString() },
  };
}

export function invalidated(card: CardRef, at: number): CardStateEvent {
  return { type: 'card.invalidated', data: { ...card, reason: 'contract', invalidatedAt: new Date(at).toISOString() } };
}
