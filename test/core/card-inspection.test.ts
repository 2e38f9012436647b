/** The operator's view of one cached card (SPEC section 15): state, expiry, TTL source, failure. */
import { describe, expect, it } from 'vitest';
import { inspectCard, inspectedState } from '../../src/core/card-inspection.js';
import { EMPTY_CARD_STATE, type CardState } from '../../src/core/card-state.js';
import type { ResolutionPolicy } from '../../src/core/card-resolution.js';
import { quantileFromBuckets } from '../../src/observability/overview.js';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const S = 1000;
const PLACEHOLDER = [{ componentText: { text: 'Loading…' } }];
const ERROR = [{ componentText: { text: 'Could not load', textColor: 'ERROR' as const } }];
const policy: ResolutionPolicy & { staleSeconds: number } = {
  staleSeconds: 100,
  placeholderTtlSeconds: 15,
  staleServeTtlSeconds: 15,
  integrationErrorTtlSeconds: 300,
  refreshAhead: 0,
  placeholder: PLACEHOLDER,
  errorComponents: ERROR,
};
const DATA = [{ componentText: { text: 'Plan: Pro' } }];
const withData: CardState = {
  ...EMPTY_CARD_STATE,
  data: { components: DATA, ttlSeconds: 60, fetchedAt: T0, upstream: 'billing', ttlSource: 'upstream' },
};
const failure = (kind: 'retriable' | 'integration'): CardState['failure'] => ({ kind, at: T0 + 5 * S, detail: 'HTTP 503', status: 503 });
const card = { key: 'plan', scope: 'customer' as const, threadId: null };

describe('inspectedState', () => {
  it.each<[string, CardState | undefined, number, string]>([
    ['nothing cached', undefined, T0, 'missing'],
    ['an empty state', EMPTY_CARD_STATE, T0, 'missing'],
    ['data within its TTL', withData, T0 + 59 * S, 'fresh'],
    ['data at its expiry', withData, T0 + 60 * S, 'stale'],
    ['data invalidated', { ...withData, invalidatedAt: T0 + S }, T0 + 2 * S, 'stale'],
    ['a failure without data', { ...EMPTY_CARD_STATE, failure: failure('retriable') }, T0, 'error'],
    ['a failure after data (stale-if-error)', { ...withData, failure: failure('integration') }, T0 + 61 * S, 'stale'],
  ])('%s → %s', (_name, state, now, expected) => {
    expect(inspectedState(now, state)).toBe(expected);
  });
});

describe('inspectCard', () => {
  it('shows fresh data with its times and TTL source', () => {
    expect(inspectCard(T0 + S, card, withData, policy)).toEqual({
      ...card,
      state: 'fresh',
      components: DATA,
      fetchedAt: '2026-12-01T10:00:00.000Z',
      expiresAt: '2026-12-01T10:01:00.000Z',
      ttlSource: 'upstream',
      lastFailure: null,
      ttlSeconds: 60,
      upstream: 'billing',
      invalidatedAt: null,
      staleUntil: '2026-12-01T10:02:40.000Z',
    });
  });

  it('shows what Plain gets without data: the placeholder when missing, the error components after a failure', () => {
    expect(inspectCard(T0, card, undefined, policy)).toMatchObject({ state: 'missing', components: PLACEHOLDER, expiresAt: null, ttlSource: null });
    const integration = inspectCard(T0, card, { ...EMPTY_CARD_STATE, failure: failure('integration') }, policy);
    expect(integration).toMatchObject({
      state: 'error',
      components: ERROR,
      fetchedAt: null,
      expiresAt: '2026-12-01T10:05:05.000Z', // the negative cache: upstream not called again until then
      lastFailure: { errorKind: 'integration', detail: 'HTTP 503', status: 503, failedAt: '2026-12-01T10:00:05.000Z' },
    });
    expect(inspectCard(T0, card, { ...EMPTY_CARD_STATE, failure: failure('retriable') }, policy)).toMatchObject({ state: 'error', expiresAt: null });
  });

  it('ends the freshness of invalidated data at the invalidation, and has no TTL source for data loaded before it was recorded', () => {
    const { ttlSource: _, ...legacyData } = withData.data!;
    const inspected = inspectCard(T0 + 20 * S, card, { ...withData, data: legacyData, invalidatedAt: T0 + 10 * S }, policy);
    expect(inspected).toMatchObject({ state: 'stale', expiresAt: '2026-12-01T10:00:10.000Z', invalidatedAt: '2026-12-01T10:00:10.000Z', ttlSource: null });
  });
});

describe('quantileFromBuckets', () => {
  const buckets = new Map([[0.1, 50], [0.5, 90], [1, 99], [Infinity, 100]]);
  it('gives the bucket bound the quantile falls under', () => {
    expect(quantileFromBuckets(buckets, 100, 0.5)).toBe(0.1);
    expect(quantileFromBuckets(buckets, 100, 0.9)).toBe(0.5);
    expect(quantileFromBuckets(buckets, 100, 0.95)).toBe(1);
    expect(quantileFromBuckets(buckets, 100, 1)).toBe(1); // in +Inf: the highest finite bound
    expect(quantileFromBuckets(new Map(), 0, 0.95)).toBeNull();
  });
});
