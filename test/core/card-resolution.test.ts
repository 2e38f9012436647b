/**
 * SPEC section 5 (card resolution) as a table of given/when/then cases over the pure policy
 * functions. Time is plain milliseconds; nothing here sleeps or touches Redis.
 */
import { describe, expect, it } from 'vitest';
import type { CardComponent } from '../../src/core/components.js';
import type { CardState } from '../../src/core/card-state.js';
import {
  answerAfterRefresh,
  freshSecondsLeft,
  isManualReload,
  lookupCard,
  type CardAnswer,
  type Lookup,
  type RefreshOutcome,
  type ResolutionPolicy,
} from '../../src/core/card-resolution.js';

const S = 1000;
const T0 = Date.parse('2024-05-01T12:00:00.000Z');

const CACHED: CardComponent[] = [{ componentText: { text: 'Plan: Pro' } }];
const PLACEHOLDER: CardComponent[] = [{ componentText: { text: 'Loading…', textColor: 'MUTED' } }];
const ERROR_COMPONENTS: CardComponent[] = [{ componentText: { text: 'Could not load', textColor: 'ERROR' } }];

/** Every TTL differs from every other, so serving the wrong one is caught. */
const POLICY: ResolutionPolicy = Object.freeze({
  staleSeconds: 3600,
  placeholderTtlSeconds: 15,
  staleServeTtlSeconds: 20,
  integrationErrorTtlSeconds: 300,
  refreshAhead: 0,
  placeholder: PLACEHOLDER,
  errorComponents: ERROR_COMPONENTS,
});

const TTL = 600;
/** Data loaded at T0 with a 600 s TTL stops being fresh here. */
const EXPIRY = T0 + TTL * S;
/** ... and stops being servable as stale here. */
const STALE_END = EXPIRY + POLICY.staleSeconds * S;

interface StateOptions {
  readonly ttlSeconds?: number;
  readonly fetchedAt?: number;
  readonly failure?: CardState['failure'];
  readonly invalidatedAt?: number | null;
}

function withData(options: StateOptions = {}): CardState {
  return {
    data: { components: CACHED, ttlSeconds: options.ttlSeconds ?? TTL, fetchedAt: options.fetchedAt ?? T0, upstream: 'billing' },
    failure: options.failure ?? null,
    invalidatedAt: options.invalidatedAt ?? null,
    customerEmail: null,
    customerExternalId: null,
  };
}

function withoutData(failure: CardState['failure']): CardState {
  return { data: null, failure, invalidatedAt: null, customerEmail: null, customerExternalId: null };
}

function integrationFailure(at: number): NonNullable<CardState['failure']> {
  return { kind: 'integration', at, detail: 'upstream answered HTTP 404', status: 404 };
}

function retriableFailure(at: number): NonNullable<CardState['failure']> {
  return { kind: 'retriable', at, detail: 'upstream answered HTTP 503', status: 503 };
}

const fresh = (ttlSeconds: number): Lookup => ({ kind: 'fresh', answer: { source: 'cache', ttlSeconds, components: CACHED } });
const stale: Lookup = { kind: 'stale', answer: { source: 'stale', ttlSeconds: POLICY.staleServeTtlSeconds, components: CACHED } };
const negativeStale: Lookup = {
  kind: 'negative',
  answer: { source: 'stale', ttlSeconds: POLICY.staleServeTtlSeconds, components: CACHED },
};
const negativeError = (ttlSeconds: number): Lookup => ({
  kind: 'negative',
  answer: { source: 'error', ttlSeconds, components: ERROR_COMPONENTS },
});
const miss: Lookup = { kind: 'miss' };
const reload: Lookup = { kind: 'reload' };

interface LookupCase {
  readonly given: string;
  readonly when: number;
  readonly state: CardState | undefined;
  readonly policy?: ResolutionPolicy;
  readonly reload?: boolean;
  readonly then: Lookup;
}

const FAILED_AT = T0 + 10 * S;
const NEGATIVE_END = FAILED_AT + POLICY.integrationErrorTtlSeconds * S;
/** Data old enough to be past its stale window at any time used with it. */
const ANCIENT = T0 - 30 * 86_400 * S;

const lookupCases: LookupCase[] = [
  // Nothing cached
  { given: 'nothing cached', when: T0, state: undefined, then: miss },

  // Rule 2: fresh, TTL left rounded up, at least 1
  { given: 'data loaded just now', when: T0, state: withData(), then: fresh(600) },
  { given: 'data loaded 1 ms ago (599.999 s left)', when: T0 + 1, state: withData(), then: fresh(600) },
  { given: 'data loaded 1 s ago', when: T0 + S, state: withData(), then: fresh(599) },
  { given: 'data loaded 10.5 s ago', when: T0 + 10_500, state: withData(), then: fresh(590) },
  { given: '1.001 s of freshness left', when: EXPIRY - 1001, state: withData(), then: fresh(2) },
  { given: 'exactly 1 s of freshness left', when: EXPIRY - S, state: withData(), then: fresh(1) },
  { given: '1 ms of freshness left', when: EXPIRY - 1, state: withData(), then: fresh(1) },

  // Rule 3: stale within staleSeconds after expiry
  { given: 'data exactly at its expiry instant', when: EXPIRY, state: withData(), then: stale },
  { given: 'data expired 1 ms ago', when: EXPIRY + 1, state: withData(), then: stale },
  { given: 'data 1 ms before the end of its stale window', when: STALE_END - 1, state: withData(), then: stale },

  // Rule 4: older than the stale window
  { given: 'data exactly at the end of its stale window', when: STALE_END, state: withData(), then: miss },
  { given: 'data long past its stale window', when: STALE_END + 86_400 * S, state: withData(), then: miss },
  {
    given: 'a card with staleSeconds 0, at its expiry instant',
    when: EXPIRY,
    state: withData(),
    policy: { ...POLICY, staleSeconds: 0 },
    then: miss,
  },

  // Upstream TTL 0: stale at once
  { given: 'data with upstream TTL 0, at its fetch instant', when: T0, state: withData({ ttlSeconds: 0 }), then: stale },
  {
    given: 'data with upstream TTL 0, 1 ms before its stale window ends',
    when: T0 + POLICY.staleSeconds * S - 1,
    state: withData({ ttlSeconds: 0 }),
    then: stale,
  },
  {
    given: 'data with upstream TTL 0, at the end of its stale window',
    when: T0 + POLICY.staleSeconds * S,
    state: withData({ ttlSeconds: 0 }),
    then: miss,
  },

  // Invalidation: stale even within the TTL
  { given: 'invalidated data within its TTL', when: T0 + S, state: withData({ invalidatedAt: T0 + 500 }), then: stale },
  { given: 'invalidated data loaded just now', when: T0, state: withData({ invalidatedAt: T0 }), then: stale },
  { given: 'invalidated data past its stale window', when: STALE_END, state: withData({ invalidatedAt: T0 + S }), then: miss },

  // Rule 5: negative cache after an integration error, no data held → error components, remaining TTL
  {
    given: 'an integration failure just now, no data',
    when: FAILED_AT,
    state: withoutData(integrationFailure(FAILED_AT)),
    then: negativeError(300),
  },
  {
    given: 'an integration failure 1 ms ago, no data (299.999 s left)',
    when: FAILED_AT + 1,
    state: withoutData(integrationFailure(FAILED_AT)),
    then: negativeError(300),
  },
  {
    given: 'an integration failure 100.2 s ago, no data',
    when: FAILED_AT + 100_200,
    state: withoutData(integrationFailure(FAILED_AT)),
    then: negativeError(200),
  },
  {
    given: 'an integration failure with 1.001 s of negative cache left, no data',
    when: NEGATIVE_END - 1001,
    state: withoutData(integrationFailure(FAILED_AT)),
    then: negativeError(2),
  },
  {
    given: 'an integration failure with 1 ms of negative cache left, no data',
    when: NEGATIVE_END - 1,
    state: withoutData(integrationFailure(FAILED_AT)),
    then: negativeError(1),
  },
  {
    given: 'an integration failure exactly at the end of the negative cache, no data',
    when: NEGATIVE_END,
    state: withoutData(integrationFailure(FAILED_AT)),
    then: miss,
  },

  // Rule 5: negative cache with data held → the stale copy, whatever its age
  {
    given: 'an integration failure, expired data within its stale window',
    when: EXPIRY + S,
    state: withData({ failure: integrationFailure(EXPIRY) }),
    then: negativeStale,
  },
  {
    given: 'an integration failure, data far past its stale window',
    when: FAILED_AT + S,
    state: withData({ fetchedAt: ANCIENT, failure: integrationFailure(FAILED_AT) }),
    then: negativeStale,
  },
  {
    given: 'an integration failure, invalidated data within its TTL',
    when: FAILED_AT + S,
    state: withData({ invalidatedAt: T0 + S, failure: integrationFailure(FAILED_AT) }),
    then: negativeStale,
  },
  {
    given: 'an integration failure with 1 ms of negative cache left, ancient data',
    when: NEGATIVE_END - 1,
    state: withData({ fetchedAt: ANCIENT, failure: integrationFailure(FAILED_AT) }),
    then: negativeStale,
  },

  // Negative window over → the ordinary stale/miss rules apply again
  {
    given: 'the negative cache over, data within its stale window',
    when: EXPIRY + 400 * S,
    state: withData({ failure: integrationFailure(EXPIRY) }),
    then: stale,
  },
  {
    given: 'the negative cache over exactly now, ancient data',
    when: NEGATIVE_END,
    state: withData({ fetchedAt: ANCIENT, failure: integrationFailure(FAILED_AT) }),
    then: miss,
  },
  {
    given: 'a custom integrationErrorTtlSeconds of 30, 30 s after the failure, no data',
    when: FAILED_AT + 30 * S,
    state: withoutData(integrationFailure(FAILED_AT)),
    policy: { ...POLICY, integrationErrorTtlSeconds: 30 },
    then: miss,
  },
  {
    given: 'a custom integrationErrorTtlSeconds of 30, 29.5 s after the failure, no data',
    when: FAILED_AT + 29_500,
    state: withoutData(integrationFailure(FAILED_AT)),
    policy: { ...POLICY, integrationErrorTtlSeconds: 30 },
    then: negativeError(1),
  },

  // A retriable failure is never negatively cached
  { given: 'a retriable failure just now, no data', when: FAILED_AT, state: withoutData(retriableFailure(FAILED_AT)), then: miss },
  {
    given: 'a retriable failure just now, expired data within its stale window',
    when: EXPIRY + S,
    state: withData({ failure: retriableFailure(EXPIRY) }),
    then: stale,
  },
  {
    given: 'a retriable failure just now, ancient data',
    when: FAILED_AT + S,
    state: withData({ fetchedAt: ANCIENT, failure: retriableFailure(FAILED_AT) }),
    then: miss,
  },

  // Rule 6: a manual reload overrides everything
  { given: 'a reload, nothing cached', when: T0, state: undefined, reload: true, then: reload },
  { given: 'a reload, fresh data', when: T0 + S, state: withData(), reload: true, then: reload },
  { given: 'a reload, stale data', when: EXPIRY + S, state: withData(), reload: true, then: reload },
  { given: 'a reload, invalidated data', when: T0 + S, state: withData({ invalidatedAt: T0 }), reload: true, then: reload },
  {
    given: 'a reload, negative cache without data',
    when: FAILED_AT + S,
    state: withoutData(integrationFailure(FAILED_AT)),
    reload: true,
    then: reload,
  },
  {
    given: 'a reload, negative cache with data',
    when: FAILED_AT + S,
    state: withData({ fetchedAt: ANCIENT, failure: integrationFailure(FAILED_AT) }),
    reload: true,
    then: reload,
  },
];

describe('lookupCard (SPEC 5, rules 2-6)', () => {
  it.each(lookupCases)('given $given, when looked up, then $then.kind', ({ when, state, policy, reload: isReload, then }) => {
    expect(lookupCard(when, state, policy ?? POLICY, isReload ?? false)).toEqual(then);
  });
});

interface AfterRefreshCase {
  readonly given: string;
  readonly when: number;
  readonly state: CardState | undefined;
  readonly outcome: RefreshOutcome;
  readonly then: CardAnswer;
}

const refreshedAnswer = (ttlSeconds: number): CardAnswer => ({ source: 'refreshed', ttlSeconds, components: CACHED });
const cacheAnswer = (ttlSeconds: number): CardAnswer => ({ source: 'cache', ttlSeconds, components: CACHED });
const staleAnswer: CardAnswer = { source: 'stale', ttlSeconds: POLICY.staleServeTtlSeconds, components: CACHED };
const placeholderAnswer: CardAnswer = { source: 'placeholder', ttlSeconds: POLICY.placeholderTtlSeconds, components: PLACEHOLDER };
const errorAnswer = (ttlSeconds: number): CardAnswer => ({ source: 'error', ttlSeconds, components: ERROR_COMPONENTS });

const afterRefreshCases: AfterRefreshCase[] = [
  // Refreshed in time: served as fresh with the TTL left
  { given: 'a card loaded just now', when: T0, state: withData(), outcome: 'refreshed', then: refreshedAnswer(600) },
  { given: 'a card loaded 2.5 s ago', when: T0 + 2500, state: withData(), outcome: 'refreshed', then: refreshedAnswer(598) },
  {
    given: 'a card loaded just now with upstream TTL 0',
    when: T0,
    state: withData({ ttlSeconds: 0 }),
    outcome: 'refreshed',
    then: refreshedAnswer(1),
  },
  {
    given: 'a card loaded just now with a 45 s TTL',
    when: T0,
    state: withData({ ttlSeconds: 45 }),
    outcome: 'refreshed',
    then: refreshedAnswer(45),
  },

  // Failed with data held: stale-if-error, whatever the age
  {
    given: 'a retriable failure, expired data within its stale window',
    when: EXPIRY + S,
    state: withData({ failure: retriableFailure(EXPIRY + S) }),
    outcome: 'failed',
    then: staleAnswer,
  },
  {
    given: 'a retriable failure, ancient data',
    when: FAILED_AT,
    state: withData({ fetchedAt: ANCIENT, failure: retriableFailure(FAILED_AT) }),
    outcome: 'failed',
    then: staleAnswer,
  },
  {
    given: 'an integration failure, ancient data',
    when: FAILED_AT,
    state: withData({ fetchedAt: ANCIENT, failure: integrationFailure(FAILED_AT) }),
    outcome: 'failed',
    then: staleAnswer,
  },
  {
    given: 'an integration failure of a reload, fresh data',
    when: FAILED_AT,
    state: withData({ failure: integrationFailure(FAILED_AT) }),
    outcome: 'failed',
    then: staleAnswer,
  },

  // Failed without data: error components, TTL by failure kind
  {
    given: 'a retriable failure, no data',
    when: FAILED_AT,
    state: withoutData(retriableFailure(FAILED_AT)),
    outcome: 'failed',
    then: errorAnswer(POLICY.placeholderTtlSeconds),
  },
  {
    given: 'an integration failure, no data',
    when: FAILED_AT,
    state: withoutData(integrationFailure(FAILED_AT)),
    outcome: 'failed',
    then: errorAnswer(POLICY.integrationErrorTtlSeconds),
  },

  // Budget ran out (pending): cache if fresh, stale if in the window, placeholder otherwise
  { given: 'fresh data, refresh still running', when: T0 + 10_500, state: withData(), outcome: 'pending', then: cacheAnswer(590) },
  { given: 'data at its expiry instant, refresh still running', when: EXPIRY, state: withData(), outcome: 'pending', then: staleAnswer },
  {
    given: 'invalidated data within its TTL, refresh still running',
    when: T0 + S,
    state: withData({ invalidatedAt: T0 }),
    outcome: 'pending',
    then: staleAnswer,
  },
  { given: 'data 1 ms before its stale window ends', when: STALE_END - 1, state: withData(), outcome: 'pending', then: staleAnswer },
  { given: 'data exactly at its stale window end', when: STALE_END, state: withData(), outcome: 'pending', then: placeholderAnswer },
  { given: 'nothing cached, refresh still running', when: T0, state: undefined, outcome: 'pending', then: placeholderAnswer },
  {
    given: 'only an earlier retriable failure, refresh still running',
    when: FAILED_AT,
    state: withoutData(retriableFailure(FAILED_AT)),
    outcome: 'pending',
    then: placeholderAnswer,
  },
];

describe('answerAfterRefresh (SPEC 5, rules 4-6)', () => {
  it.each(afterRefreshCases)('given $given, when the refresh is $outcome, then $then.source', ({ when, state, outcome, then }) => {
    expect(answerAfterRefresh(when, state, POLICY, outcome)).toEqual(then);
  });
});

describe('freshSecondsLeft', () => {
  const data = { components: CACHED, ttlSeconds: TTL, fetchedAt: T0, upstream: 'billing' };
  it.each<[string, number, number]>([
    ['the whole TTL at the fetch instant', T0, 600],
    ['rounded up after 1 ms', T0 + 1, 600],
    ['599 after exactly 1 s', T0 + S, 599],
    ['rounded up with 1.001 s left', EXPIRY - 1001, 2],
    ['1 with exactly 1 s left', EXPIRY - S, 1],
    ['at least 1 at the expiry instant', EXPIRY, 1],
    ['at least 1 long after expiry', EXPIRY + 86_400 * S, 1],
  ])('is %s', (_name, now, expected) => {
    expect(freshSecondsLeft(now, data)).toBe(expected);
  });

  it('is at least 1 for a TTL of 0', () => {
    expect(freshSecondsLeft(T0, { ...data, ttlSeconds: 0 })).toBe(1);
  });
});

describe('isManualReload (SPEC 5, rule 6)', () => {
  const SERVED_UNTIL = T0 + 15 * S;
  it.each<[string, number, number, number | null, boolean]>([
    ['single key, answered and still cached by Plain', 1, T0, SERVED_UNTIL, true],
    ['single key, 1 ms before the answer expires in Plain', 1, SERVED_UNTIL - 1, SERVED_UNTIL, true],
    ['single key, exactly when the answer expires in Plain', 1, SERVED_UNTIL, SERVED_UNTIL, false],
    ['single key, after the answer expired in Plain', 1, SERVED_UNTIL + 1, SERVED_UNTIL, false],
    ['single key, never answered', 1, T0, null, false],
    ['two keys, still cached by Plain', 2, T0, SERVED_UNTIL, false],
    ['25 keys, still cached by Plain', 25, T0, SERVED_UNTIL, false],
  ])('%s → %s', (_name, keyCount, now, servedUntil, expected) => {
    expect(isManualReload(now, keyCount, servedUntil)).toBe(expected);
  });
});
