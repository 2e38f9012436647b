/**
 * A cached card as the projection of its events. `evolve` is the only place that says how an
 * event changes a card; the Redis store and replay both go through it.
 */
import { z } from 'zod';
import { CardComponentsSchema, type CardComponent } from './components.js';
import { ErrorKindSchema, eventTime, type CardStateEvent } from './card-events.js';
import { TtlSourceSchema } from './effective-ttl.js';

export const CardStateSchema = z.object({
  /** The last successful load, kept through later failures for stale-if-error. */
  data: z
    .object({
      components: CardComponentsSchema.nullable(),
      /** Effective TTL fixed when the card was loaded (override > upstream > card config). */
      ttlSeconds: z.number().int().min(0),
      fetchedAt: z.number(),
      upstream: z.string(),
      /** Which of those three gave the TTL; absent for cards loaded before it was recorded. */
      ttlSource: TtlSourceSchema.optional(),
    })
    .nullable(),
  /** The last failed refresh since the last success; drives the negative cache. */
  failure: z
    .object({
      kind: ErrorKindSchema,
      at: z.number(),
      detail: z.string(),
      status: z.number().int().nullable(),
    })
    .nullable(),
  /** Set by an operator's invalidation: the data counts as stale from then on. */
  invalidatedAt: z.number().nullable(),
  /** Kept for the customer look-up index (invalidation by email or external id). */
  customerEmail: z.string().nullable(),
  customerExternalId: z.string().nullable(),
});

export type CardState = z.infer<typeof CardStateSchema>;

/**
 * Components the core passes through without looking inside: the store may hand a cached card's
 * components over in the form it keeps them (serialized, to be copied into the answer) instead of
 * parsed. All the core may rely on is that they serialize to the components' JSON.
 */
export interface PassThroughComponents {
  toJSON(): unknown;
}

/** A card's components as an answer carries them: parsed, none, or passed through from the store. */
export type ServedComponents = readonly CardComponent[] | null | PassThroughComponents;

/** A card state as the warm path reads it for serving: its components may be passed through. Every `CardState` is one. */
export type ServedCardState = Omit<CardState, 'data'> & {
  readonly data: (Omit<NonNullable<CardState['data']>, 'components'> & { components: ServedComponents }) | null;
};

export const EMPTY_CARD_STATE: CardState = Object.freeze({
  data: null,
  failure: null,
  invalidatedAt: null,
  customerEmail: null,
  customerExternalId: null,
});

/** Applies one event to a card's state. Pure; `undefined` stands for "nothing cached". */
export function evolve(state: CardState | undefined, event: CardStateEvent): CardState {
  const current = state ?? EMPTY_CARD_STATE;
  switch (event.type) {
    case 'card.refreshed': {
      const d = event.data;
      return {
        data: {
          components: d.components,
          ttlSeconds: d.ttlSeconds,
          fetchedAt: Date.parse(d.fetchedAt),
          upstream: d.upstream,
          ...(d.ttlSource === undefined ? {} : { ttlSource: d.ttlSource }),
        },
        failure: null,
        invalidatedAt: null,
        customerEmail: d.customerEmail ?? current.customerEmail,
        customerExternalId: d.customerExternalId ?? current.customerExternalId,
      };
    }
    case 'card.refresh_failed': {
      const d = event.data;
      return {
        ...current,
        failure: { kind: d.errorKind, at: Date.parse(d.failedAt), detail: d.detail, status: d.status },
        customerEmail: d.customerEmail ?? current.customerEmail,
        customerExternalId: d.customerExternalId ?? current.customerExternalId,
      };
    }
    case 'card.invalidated':
      // Nothing cached: nothing to mark stale.
      if (current.data === null) return current;
      return {
        ...current,
        invalidatedAt: Date.parse(event.data.invalidatedAt),
        customerEmail: event.data.customerEmail ?? current.customerEmail,
        customerExternalId: event.data.customerExternalId ?? current.customerExternalId,
      };
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
}

/** How long a state stays worth keeping, for its card's policy. */
export interface RetentionPolicy {
  readonly staleSeconds: number;
  readonly integrationErrorTtlSeconds: number;
}

/** A failure without data is kept this long so that waiting requests can read its outcome. */
const RETRIABLE_FAILURE_KEEP_MS = 60_000;

/**
 * When the state stops being useful: the end of the stale window of its data, or of the negative
 * cache of its failure, whichever is later. Returns null when it is worth nothing already.
 */
export function keepUntil(state: Pick<ServedCardState, 'data' | 'failure'>, policy: RetentionPolicy): number | null {
  let until = -Infinity;
  if (state.data) {
    until = Math.max(until, state.data.fetchedAt + (state.data.ttlSeconds + policy.staleSeconds) * 1000);
  }
  if (state.failure) {
    const keep = state.failure.kind === 'integration' ? policy.integrationErrorTtlSeconds * 1000 : RETRIABLE_FAILURE_KEEP_MS;
    until = Math.max(until, state.failure.at + keep);
  }
  return Number.isFinite(until) ? until : null;
}

/**
 * `evolve` as the cache saw it when the event happened: a state whose keep-until had passed by
 * then had expired from Redis, so the event applied to nothing. Replay evolves through this, so
 * that rebuilding the cache from the log gives what the live writes (which evolve what Redis
 * holds) produced, without the intermediate states that had expired.
 */
export function evolveKept(state: CardState | undefined, event: CardStateEvent, policy: RetentionPolicy): CardState {
  const until = state === undefined ? null : keepUntil(state, policy);
  return evolve(until !== null && until > eventTime(event) ? state : undefined, event);
}
