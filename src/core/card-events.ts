/**
 * The event log's vocabulary (SPEC section 6). Every change of a card's state is one of these;
 * the cache is their projection (see card-state.ts). Schemas validate events read back from the
 * stream, so a hand-edited or foreign entry is skipped instead of corrupting the projection.
 */
import { z } from 'zod';
import { CardComponentsSchema } from './components.js';
import { REFRESH_TRIGGERS } from './refresh-trigger.js';
import { TtlSourceSchema } from './effective-ttl.js';

const CardIdentity = {
  workspaceId: z.string(),
  customerId: z.string(),
  threadId: z.string().nullable(),
  cardKey: z.string(),
};

/** Why the refresh ran (absent in events recorded before it was recorded). */
const Trigger = { trigger: z.enum(REFRESH_TRIGGERS).optional() };

/** The customer's other identifiers, carried so that replay can rebuild the look-up index. */
const CustomerIdentifiers = {
  customerEmail: z.string().nullable().optional(),
  customerExternalId: z.string().nullable().optional(),
};

export const CardRefreshedData = z.object({
  ...CardIdentity,
  ...CustomerIdentifiers,
  components: CardComponentsSchema.nullable(),
  ttlSeconds: z.number().int().min(0),
  /** Which setting gave `ttlSeconds`; absent in events recorded before it was added. */
  ttlSource: TtlSourceSchema.optional(),
  fetchedAt: z.iso.datetime(),
  upstream: z.string(),
  durationMs: z.number().min(0),
  ...Trigger,
});

export const ErrorKindSchema = z.enum(['retriable', 'integration']);
export type ErrorKind = z.infer<typeof ErrorKindSchema>;

export const CardRefreshFailedData = z.object({
  ...CardIdentity,
  ...CustomerIdentifiers,
  upstream: z.string(),
  errorKind: ErrorKindSchema,
  detail: z.string(),
  status: z.number().int().nullable(),
  failedAt: z.iso.datetime(),
  ...Trigger,
});

export const CardInvalidatedData = z.object({
  ...CardIdentity,
  /** New identifiers of the customer, when the invalidation learned them (a Plain webhook). */
  ...CustomerIdentifiers,
  reason: z.string(),
  invalidatedAt: z.iso.datetime(),
});

export const TtlOverrideSetData = z.object({ cardKey: z.string(), ttlSeconds: z.number().int().min(1) });
export const TtlOverrideClearedData = z.object({ cardKey: z.string() });

export const CardEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('card.refreshed'), data: CardRefreshedData }),
  z.object({ type: z.literal('card.refresh_failed'), data: CardRefreshFailedData }),
  z.object({ type: z.literal('card.invalidated'), data: CardInvalidatedData }),
  z.object({ type: z.literal('ttl.override_set'), data: TtlOverrideSetData }),
  z.object({ type: z.literal('ttl.override_cleared'), data: TtlOverrideClearedData }),
]);

export type CardEvent = z.infer<typeof CardEventSchema>;
export type CardEventType = CardEvent['type'];
export type CardStateEvent = Extract<CardEvent, { type: 'card.refreshed' | 'card.refresh_failed' | 'card.invalidated' }>;
/** The events that set or clear an operator's run-time TTL override of a card key. */
export type TtlOverrideEvent = Extract<CardEvent, { type: 'ttl.override_set' | 'ttl.override_cleared' }>;

export const CARD_EVENT_TYPES = [
  'card.refreshed',
  'card.refresh_failed',
  'card.invalidated',
  'ttl.override_set',
  'ttl.override_cleared',
] as const satisfies readonly CardEventType[];

/** True for the events that change one card's cached state (as opposed to TTL overrides). */
export function isCardStateEvent(event: CardEvent): event is CardStateEvent {
  return event.type === 'card.refreshed' || event.type === 'card.refresh_failed' || event.type === 'card.invalidated';
}

/** True for the events that set or clear a run-time TTL override. */
export function isTtlOverrideEvent(event: CardEvent): event is TtlOverrideEvent {
  return event.type === 'ttl.override_set' || event.type === 'ttl.override_cleared';
}

/** When a card-state event happened (ms since the epoch), by the clock of the process that recorded it. */
export function eventTime(event: CardStateEvent): number {
  switch (event.type) {
    case 'card.refreshed':
      return Date.parse(event.data.fetchedAt);
    case 'card.refresh_failed':
      return Date.parse(event.data.failedAt);
    case 'card.invalidated':
      return Date.parse(event.data.invalidatedAt);
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
}
