/**
 * The TTL rule of SPEC 5.2 with refresh-ahead (10.3) as tables over the pure functions, and a
 * simulation of a client that caches like Plain: asks again exactly when the TTL it was given
 * runs out. Time is plain milliseconds; nothing here sleeps or touches Redis.
 */
import { describe, expect, it } from 'vitest';
import type { CardState } from '../../src/core/card-state.js';
import {
  freshAnswerTtl,
  leadStartsAt,
  lookupCard,
  plainCopyExpiresAt,
  type ResolutionPolicy,
} from '../../src/core/card-resolution.js';

const S = 1000;
const T0 = 1_000_000_000;
const data = (ttlSeconds: number, fetchedAt = T0) => ({ components: null, ttlSeconds, fetchedAt, upstream: 'legacy' });

const policy = (refreshAhead: number, staleServeTtlSeconds = 15): ResolutionPolicy => ({
  staleSeconds: 3600,
  placeholderTtlSeconds: 15,
  staleServeTtlSeconds,
  integrationErrorTtlSeconds: 300,
  refreshAhead,
  placeholder: [],
  errorComponents: [],
});

describe('freshAnswerTtl: the TTL of a fresh card', () => {
  it.each<[string, number, number, number, { ttlSeconds: number; inLead: boolean }]>([
    // [case, ttlSeconds, refreshAhead, now, then]
    ['off: the seconds of freshness left', 300, 0, T0, { ttlSeconds: 300, inLead: false }],
    ['off: rounded up', 300, 0, T0 + 500, { ttlSeconds: 300, inLead: false }],
    ['off: 1 s before expiry', 300, 0, T0 + 299 * S, { ttlSeconds: 1, inLead: false }],
    ['off: at least 1 just before expiry', 300, 0, T0 + 299_999, { ttlSeconds: 1, inLead: false }],
    ['0.2: the seconds left less the 60 s lead', 300, 0.2, T0, { ttlSeconds: 240, inLead: false }],
    ['0.2: rounded up, so Plain comes back inside the lead', 300, 0.2, T0 + 500, { ttlSeconds: 240, inLead: false }],
    ['0.2: 1 s before the lead', 300, 0.2, T0 + 239 * S, { ttlSeconds: 1, inLead: false }],
    ['0.2: at the start of the lead, capped by staleServeTtlSeconds', 300, 0.2, T0 + 240 * S, { ttlSeconds: 15, inLead: true }],
    ['0.2: late in the lead, the seconds left', 300, 0.2, T0 + 290 * S, { ttlSeconds: 10, inLead: true }],
    ['0.2: last ms of the lead, at least 1', 300, 0.2, T0 + 299_999, { ttlSeconds: 1, inLead: true }],
    ['0.5: half the TTL', 60, 0.5, T0, { ttlSeconds: 30, inLead: false }],
    ['0.2 of 7 s: lead of 1.4 s, rounded up to 6', 7, 0.2, T0, { ttlSeconds: 6, inLead: false }],
    ['0.2 of 7 s: inside the 1.4 s lead', 7, 0.2, T0 + 5_700, { ttlSeconds: 2, inLead: true }],
  ])('%s', (_name, ttlSeconds, refreshAhead, now, then) => {
    expect(freshAnswerTtl(now, data(ttlSeconds), policy(refreshAhead))).toEqual(then);
  });

  it('starts the lead refreshAhead × TTL before expiry', () => {
    expect(leadStartsAt(data(300), 0.2)).toBe(T0 + 240 * S);
    expect(leadStartsAt(data(300), 0)).toBe(T0 + 300 * S);
  });
});

describe('lookupCard inside the lead', () => {
  const state = (failure: CardState['failure'] = null): CardState => ({
    data: data(300),
    failure,
    invalidatedAt: null,
    customerEmail: null,
    customerExternalId: null,
  });
  it.each<[string, number, CardState['failure'], boolean]>([
    ['before the lead: fresh, no refresh', T0 + 100 * S, null, false],
    ['inside the lead: fresh, refresh ahead', T0 + 250 * S, null, true],
    ['inside the lead after a failed refresh: fresh, not retried ahead', T0 + 250 * S, { kind: 'retriable', at: T0 + 245 * S, detail: '503', status: 503 }, false],
  ])('%s', (_name, now, failure, ahead) => {
    const lookup = lookupCard(now, state(failure), policy(0.2), false);
    expect(lookup.kind).toBe('fresh');
    expect(lookup.kind === 'fresh' && lookup.refreshAhead === true).toBe(ahead);
  });
});

describe('plainCopyExpiresAt with refresh-ahead', () => {
  const answer = (ttlSeconds: number) => ({ source: 'cache' as const, ttlSeconds, components: null });
  it('is the start of the lead before it, the same for every request', () => {
    expect(plainCopyExpiresAt(T0 + 10 * S, answer(230), data(300), 0.2)).toBe(T0 + 240 * S);
    expect(plainCopyExpiresAt(T0 + 100_500, answer(140), data(300), 0.2)).toBe(T0 + 240 * S);
  });
  it('is now + the TTL given inside the lead', () => {
    expect(plainCopyExpiresAt(T0 + 250 * S, answer(15), data(300), 0.2)).toBe(T0 + 265 * S);
  });
});

/**
 * A client that behaves like Plain (asks again exactly when the TTL it was given runs out) keeps
 * a customer open for an hour; every refresh takes `upstreamMs` from the request that started it.
 */
function keepOpen(refreshAhead: number, upstreamMs: number) {
  const p = policy(refreshAhead);
  let card = data(300);
  let refreshLandsAt: number | null = null;
  const served: Array<'fresh' | 'stale'> = [];
  /** The longest a landed version waited for the client's next request. */
  let longestUnseenMs = 0;
  for (let now = T0; now < T0 + 3600 * S; ) {
    if (refreshLandsAt !== null && refreshLandsAt <= now) {
      card = data(300, refreshLandsAt);
      longestUnseenMs = Math.max(longestUnseenMs, now - refreshLandsAt);
      refreshLandsAt = null;
    }
    const lookup = lookupCard(now, { data: card, failure: null, invalidatedAt: null, customerEmail: null, customerExternalId: null }, p, false);
    if (lookup.kind !== 'fresh' && lookup.kind !== 'stale') throw new Error(`unexpected ${lookup.kind}`);
    served.push(lookup.kind);
    const refresh = lookup.kind === 'stale' || (lookup.kind === 'fresh' && lookup.refreshAhead === true);
    if (refresh && refreshLandsAt === null) refreshLandsAt = now + upstreamMs;
    now += lookup.answer.ttlSeconds * S;
  }
  return { served, longestUnseenMs };
}

describe('a client that caches like Plain (SPEC 10.3)', () => {
  it('is never served stale while the upstream answers within the lead (60 s of 300 s)', () => {
    for (const upstreamMs of [100, 5_000, 20_000, 44_000]) {
      const { served, longestUnseenMs } = keepOpen(0.2, upstreamMs);
      expect(served.filter((kind) => kind === 'stale')).toEqual([]);
      // ... and sees each new version within staleServeTtlSeconds (15) of its landing.
      expect(longestUnseenMs).toBeLessThanOrEqual(15 * S);
    }
  });

  it('is served stale after every expiry without refresh-ahead', () => {
    const { served } = keepOpen(0, 100);
    expect(served.filter((kind) => kind === 'stale').length).toBeGreaterThanOrEqual(11);
  });
});
