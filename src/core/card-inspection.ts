/**
 * A cached card as an operator sees it (SPEC section 15, `GET /admin/customers/:id/cards`): its
 * state, what Plain is shown for it, when it was fetched and stops being fresh, where its TTL came
 * from and its last failure. Pure: the same rules as `card-resolution.ts`, read from one state.
 */
import type { CardComponent } from './components.js';
import type { ErrorKind } from './card-events.js';
import type { CardState } from './card-state.js';
import type { ResolutionPolicy } from './card-resolution.js';
import type { TtlSource } from './effective-ttl.js';

/**
 * `fresh`: served from the cache as is. `stale`: served at once and refreshed (expired, or marked
 * stale by an invalidation). `error`: no data, a failed refresh: Plain gets the error components.
 * `missing`: nothing cached: the next load waits for the upstream and may get the placeholder.
 */
export type InspectedState = 'fresh' | 'stale' | 'error' | 'missing';

export interface InspectedFailure {
  /** The failure's class: `retriable` (5xx, 429, time-out, connection) or `integration`. */
  readonly errorKind: ErrorKind;
  readonly detail: string;
  readonly status: number | null;
  readonly failedAt: string;
}

/** One card of `GET /admin/customers/:customerId/cards`. */
export interface InspectedCard {
  readonly key: string;
  readonly scope: 'customer' | 'thread';
  readonly threadId: string | null;
  readonly state: InspectedState;
  /** What Plain is shown: the data, or the error components, or (missing) the placeholder. */
  readonly components: readonly CardComponent[] | null;
  readonly fetchedAt: string | null;
  /** When the data stops being fresh; for an integration error, when the upstream is tried again. */
  readonly expiresAt: string | null;
  /** Which setting gave the TTL; null without data or for cards loaded before it was recorded. */
  readonly ttlSource: TtlSource | null;
  readonly lastFailure: InspectedFailure | null;
  readonly ttlSeconds: number | null;
  readonly upstream: string | null;
  readonly invalidatedAt: string | null;
  /** Until when a stale copy is still served (end of the stale window). */
  readonly staleUntil: string | null;
}

const SECOND = 1000;
const iso = (ms: number): string => new Date(ms).toISOString();

/** The state of a card from its cached projection (undefined: nothing cached). */
export function inspectedState(now: number, state: CardState | undefined): InspectedState {
  if (state === undefined) return 'missing';
  const { data } = state;
  if (data !== null) {
    const fresh = state.invalidatedAt === null && now < data.fetchedAt + data.ttlSeconds * SECOND;
    return fresh ? 'fresh' : 'stale';
  }
  return state.failure !== null ? 'error' : 'missing';
}

/** Describes one card for the operator; see {@link InspectedCard}. */
export function inspectCard(
  now: number,
  card: { key: string; scope: 'customer' | 'thread'; threadId: string | null },
  state: CardState | undefined,
  policy: ResolutionPolicy,
): InspectedCard {
  const kind = inspectedState(now, state);
  const data = state?.data ?? null;
  const failure = state?.failure ?? null;
  let expiresAt: number | null = null;
  if (data !== null) {
    const expiry = data.fetchedAt + data.ttlSeconds * SECOND;
    expiresAt = state!.invalidatedAt === null ? expiry : Math.min(expiry, state!.invalidatedAt);
  } else if (failure?.kind === 'integration') {
    expiresAt = failure.at + policy.integrationErrorTtlSeconds * SECOND;
  }
  const components = kind === 'error' ? policy.errorComponents : kind === 'missing' ? policy.placeholder : (data?.components ?? null);
  return {
    key: card.key,
    scope: card.scope,
    threadId: card.threadId,
    state: kind,
    components,
    fetchedAt: data ? iso(data.fetchedAt) : null,
    expiresAt: expiresAt === null ? null : iso(expiresAt),
    ttlSource: data?.ttlSource ?? null,
    lastFailure: failure ? { errorKind: failure.kind, detail: failure.detail, status: failure.status, failedAt: iso(failure.at) } : null,
    ttlSeconds: data?.ttlSeconds ?? null,
    upstream: data?.upstream ?? null,
    invalidatedAt: state?.invalidatedAt != null ? iso(state.invalidatedAt) : null,
    staleUntil: data ? iso(data.fetchedAt + (data.ttlSeconds + policy.staleSeconds) * SECOND) : null,
  };
}
