/**
 * The card resolution policy of SPEC section 5, as pure functions of (now, cached state, policy).
 * `lookupCard` decides what a request does with a cached card; `answerAfterRefresh` decides what
 * it serves once the refresh it waited for landed, failed or ran out of budget.
 */
import type { CardComponent } from './components.js';
import type { ServedCardState, ServedComponents } from './card-state.js';

/** The card settings the policy reads (a CardPolicy from the config satisfies it). */
export interface ResolutionPolicy {
  readonly staleSeconds: number;
  readonly placeholderTtlSeconds: number;
  readonly staleServeTtlSeconds: number;
  readonly integrationErrorTtlSeconds: number;
  /** Refresh-ahead lead as a fraction of the effective TTL (0 to 0.5; 0: off). */
  readonly refreshAhead: number;
  readonly placeholder: readonly CardComponent[];
  readonly errorComponents: readonly CardComponent[];
}

/** Where a served card came from; the `source` label of cardproxy_cards_served_total. */
export type AnswerSource = 'cache' | 'stale' | 'refreshed' | 'placeholder' | 'error';

/** One card as it goes back to Plain, plus where it came from. */
export interface CardAnswer {
  readonly source: AnswerSource;
  readonly ttlSeconds: number;
  /** Components answered from the cache may be passed through as the store keeps them. */
  readonly components: ServedComponents;
}

/** What a request does for one key; `kind` is the `result` label of cardproxy_card_lookups_total. */
export type Lookup =
  /** `refreshAhead`: served inside its refresh-ahead lead; refresh it in the background. */
  | { readonly kind: 'fresh'; readonly answer: CardAnswer; readonly refreshAhead?: true }
  | { readonly kind: 'stale'; readonly answer: CardAnswer } // serve now, refresh in the background
  | { readonly kind: 'negative'; readonly answer: CardAnswer } // integration error cached: no upstream call
  | { readonly kind: 'miss' } // refresh and wait within the budget
  | { readonly kind: 'reload' }; // the user pressed reload: forced refresh, wait within the budget

export type LookupKind = Lookup['kind'];

/** How the refresh a request waited for turned out. */
export type RefreshOutcome = 'refreshed' | 'failed' | 'pending';

const SECOND = 1000;

/** Seconds of freshness left, rounded up, at least 1 (Plain needs a positive TTL to cache). */
export function freshSecondsLeft(now: number, data: NonNullable<ServedCardState['data']>): number {
  const left = Math.ceil((data.fetchedAt + data.ttlSeconds * SECOND - now) / SECOND);
  return Math.max(1, left);
}

/** When a card's refresh-ahead lead begins (ms): `refreshAhead × effective TTL` before it expires. */
export function leadStartsAt(data: NonNullable<ServedCardState['data']>, refreshAhead: number): number {
  const ttlMs = data.ttlSeconds * SECOND;
  return data.fetchedAt + ttlMs - refreshAhead * ttlMs;
}

/**
 * The `timeToLiveSeconds` of a fresh card (SPEC 5.2 with refresh-ahead, 10.3), and whether it is
 * inside its lead.
 *
 * Plain caches each answer for the `timeToLiveSeconds` it was given and asks again only when that
 * runs out, so the TTL we give decides when we next hear of the card. Told the seconds of
 * freshness left, Plain would come back only once the card had expired and get the stale copy,
 * while the refresh ran behind it. So outside the lead the TTL ends where the lead begins
 * (rounded up, so Plain's copy expires inside the lead): Plain's next request then lands while
 * the card is still fresh, is answered fresh, and starts one background refresh with the rest of
 * the lead to finish. Inside the lead the TTL is at most `staleServeTtlSeconds`, so Plain asks
 * again soon and picks up the new version within that time of its landing. An upstream that
 * answers within the lead therefore never lets a watched card be served stale. With
 * `refreshAhead` 0 the lead is empty and the TTL is exactly the seconds of freshness left.
 */
export function freshAnswerTtl(
  now: number,
  data: NonNullable<ServedCardState['data']>,
  policy: Pick<ResolutionPolicy, 'refreshAhead' | 'staleServeTtlSeconds'>,
): { ttlSeconds: number; inLead: boolean } {
  const leadStart = leadStartsAt(data, policy.refreshAhead);
  if (now < leadStart) return { ttlSeconds: Math.max(1, Math.ceil((leadStart - now) / SECOND)), inLead: false };
  return { ttlSeconds: Math.min(freshSecondsLeft(now, data), policy.staleServeTtlSeconds), inLead: true };
}

function isFresh(now: number, state: ServedCardState): boolean {
  const data = state.data;
  return data !== null && state.invalidatedAt === null && now < data.fetchedAt + data.ttlSeconds * SECOND;
}

function isWithinStaleWindow(now: number, state: ServedCardState, policy: ResolutionPolicy): boolean {
  const data = state.data;
  return data !== null && now < data.fetchedAt + (data.ttlSeconds + policy.staleSeconds) * SECOND;
}

function negativeUntil(state: ServedCardState, policy: ResolutionPolicy): number {
  const failure = state.failure;
  return failure?.kind === 'integration' ? failure.at + policy.integrationErrorTtlSeconds * SECOND : -Infinity;
}

function cacheAnswer(now: number, data: NonNullable<ServedCardState['data']>, policy: ResolutionPolicy, source: 'cache' | 'refreshed'): CardAnswer {
  return { source, ttlSeconds: freshAnswerTtl(now, data, policy).ttlSeconds, components: data.components };
}

function staleAnswer(data: NonNullable<ServedCardState['data']>, policy: ResolutionPolicy): CardAnswer {
  return { source: 'stale', ttlSeconds: policy.staleServeTtlSeconds, components: data.components };
}

function placeholderAnswer(policy: ResolutionPolicy): CardAnswer {
  return { source: 'placeholder', ttlSeconds: policy.placeholderTtlSeconds, components: policy.placeholder };
}

function errorAnswer(policy: ResolutionPolicy, ttlSeconds: number): CardAnswer {
  return { source: 'error', ttlSeconds, components: policy.errorComponents };
}

/**
 * Rules 2-6 of SPEC section 5 for one key (rule 1, unknown keys, is decided before a state is read).
 * @param isReload the request is a manual reload of this card (see `isManualReload`)
 */
export function lookupCard(now: number, state: ServedCardState | undefined, policy: ResolutionPolicy, isReload: boolean): Lookup {
  if (isReload) return { kind: 'reload' };
  if (state === undefined) return { kind: 'miss' };
  if (isFresh(now, state)) {
    const data = state.data!;
    const { ttlSeconds, inLead } = freshAnswerTtl(now, data, policy);
    const answer: CardAnswer = { source: 'cache', ttlSeconds, components: data.components };
    // A refresh that failed since this copy was loaded is not retried ahead: the stale path will.
    return inLead && state.failure === null ? { kind: 'fresh', answer, refreshAhead: true } : { kind: 'fresh', answer };
  }
  const negativeEnd = negativeUntil(state, policy);
  if (now < negativeEnd) {
    const answer = state.data
      ? staleAnswer(state.data, policy)
      : errorAnswer(policy, Math.max(1, Math.ceil((negativeEnd - now) / SECOND)));
    return { kind: 'negative', answer };
  }
  if (isWithinStaleWindow(now, state, policy)) return { kind: 'stale', answer: staleAnswer(state.data!, policy) };
  return { kind: 'miss' };
}

/**
 * What a request serves for a key it refreshed (miss or reload) once the refresh settled or the
 * budget ran out. `state` is the card as read after that moment.
 */
export function answerAfterRefresh(
  now: number,
  state: ServedCardState | undefined,
  policy: ResolutionPolicy,
  outcome: RefreshOutcome,
): CardAnswer {
  const data = state?.data ?? null;
  switch (outcome) {
    case 'refreshed':
      return data ? cacheAnswer(now, data, policy, 'refreshed') : placeholderAnswer(policy);
    case 'failed': {
      // Stale-if-error: a copy of any age that is still held beats an error card.
      if (data) return staleAnswer(data, policy);
      const integration = state?.failure?.kind === 'integration';
      return errorAnswer(policy, integration ? policy.integrationErrorTtlSeconds : policy.placeholderTtlSeconds);
    }
    case 'pending':
      if (state && isFresh(now, state)) return cacheAnswer(now, data!, policy, 'cache');
      if (state && isWithinStaleWindow(now, state, policy)) return staleAnswer(data!, policy);
      return placeholderAnswer(policy);
    default: {
      const unreachable: never = outcome;
      return unreachable;
    }
  }
}

/**
 * Plain caches what it is given per customer and thread, so a single-key request for a card it
 * was answered less than that answer's TTL ago can only be a user pressing reload.
 * @param servedUntil when the last answer for (workspace, customer, thread, key) expires in Plain, or null
 */
export function isManualReload(now: number, requestedKeyCount: number, servedUntil: number | null): boolean {
  return requestedKeyCount === 1 && servedUntil !== null && now < servedUntil;
}

/**
 * When Plain's copy of an answer expires, for manual reload detection. A card answered fresh
 * from the cache before its refresh-ahead lead is told the seconds until the lead, rounded up, so
 * Plain's copy lives until the lead begins (up to a second longer): that instant is stable from
 * one warm answer to the next, so the marker needs writing only once per load, not once per
 * request. Inside the lead (and for any other answer) it is the TTL given from now.
 * @param freshData the cached data a `fresh` lookup answered from; omit for any other answer
 * @param refreshAhead that card's refresh-ahead fraction
 */
export function plainCopyExpiresAt(now: number, answer: CardAnswer, freshData?: NonNullable<ServedCardState['data']>, refreshAhead = 0): number {
  if (freshData) {
    const leadStart = leadStartsAt(freshData, refreshAhead);
    if (now < leadStart) return Math.max(leadStart, now + SECOND);
  }
  return now + answer.ttlSeconds * SECOND;
}
