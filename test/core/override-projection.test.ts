/**
 * Run-time TTL overrides as a projection of the event log (SPEC sections 6 and 7):
 * `evolveOverrides` folded over event sequences, as a pure function.
 */
import { describe, expect, it } from 'vitest';
import { CardEventSchema, isTtlOverrideEvent, type TtlOverrideEvent } from '../../src/core/card-events.js';
import { evolveOverrides, NO_TTL_OVERRIDES, type TtlOverrides } from '../../src/core/ttl-overrides.js';

const set = (cardKey: string, ttlSeconds: number): TtlOverrideEvent => ({ type: 'ttl.override_set', data: { cardKey, ttlSeconds } });
const cleared = (cardKey: string): TtlOverrideEvent => ({ type: 'ttl.override_cleared', data: { cardKey } });

const fold = (events: readonly TtlOverrideEvent[], from: TtlOverrides = NO_TTL_OVERRIDES): TtlOverrides =>
  events.reduce(evolveOverrides, from);

const sequences: Array<{ name: string; events: TtlOverrideEvent[]; expected: Record<string, number> }> = [
  { name: 'no events → no overrides', events: [], expected: {} },
  { name: 'set → that override', events: [set('plan', 60)], expected: { plan: 60 } },
  { name: 'set twice → the last value wins', events: [set('plan', 60), set('plan', 5)], expected: { plan: 5 } },
  { name: 'set then cleared → none', events: [set('plan', 60), cleared('plan')], expected: {} },
  { name: 'cleared when none was set → none', events: [cleared('plan')], expected: {} },
  { name: 'cleared then set → the new value', events: [set('plan', 60), cleared('plan'), set('plan', 90)], expected: { plan: 90 } },
  {
    name: 'keys are independent',
    events: [set('plan', 60), set('invoices', 30), cleared('plan'), set('usage', 1)],
    expected: { invoices: 30, usage: 1 },
  },
  { name: 'clearing another key leaves this one', events: [set('plan', 60), cleared('invoices')], expected: { plan: 60 } },
];

describe('evolveOverrides: event sequences → overrides', () => {
  it.each(sequences)('$name', ({ events, expected }) => {
    expect(Object.fromEntries(fold(events))).toStrictEqual(expected);
  });

  it('is pure: never changes the map it is given', () => {
    const before = fold([set('plan', 60)]);
    const snapshot = new Map(before);
    fold([set('plan', 5), cleared('plan'), set('usage', 7)], before);
    expect(before).toStrictEqual(snapshot);
    expect(NO_TTL_OVERRIDES.size).toBe(0);
  });

  it('returns the same map when an event changes nothing', () => {
    const current = fold([set('plan', 60)]);
    expect(evolveOverrides(current, set('plan', 60))).toBe(current);
    expect(evolveOverrides(current, cleared('usage'))).toBe(current);
  });

  it('replaying the same events from the start always gives the same overrides (idempotent replay)', () => {
    const events = [set('plan', 60), set('usage', 2), cleared('plan'), set('plan', 8)];
    expect(fold(events)).toStrictEqual(fold(events));
    // Applying the tail again to the result changes nothing: each event sets its key outright.
    expect(fold(events.slice(2), fold(events))).toStrictEqual(fold(events));
  });
});

describe('override events in the log vocabulary', () => {
  it('are told apart from card-state events', () => {
    expect(isTtlOverrideEvent(set('plan', 60))).toBe(true);
    expect(isTtlOverrideEvent(cleared('plan'))).toBe(true);
    const refreshed = CardEventSchema.parse({
      type: 'card.refreshed',
      data: {
        workspaceId: 'w',
        customerId: 'c',
        threadId: null,
        cardKey: 'plan',
        components: null,
        ttlSeconds: 1,
        fetchedAt: '2024-05-01T12:00:00.000Z',
        upstream: 'billing',
        durationMs: 1,
      },
    });
    expect(isTtlOverrideEvent(refreshed)).toBe(false);
  });

  it.each([
    ['a TTL below 1', { type: 'ttl.override_set', data: { cardKey: 'plan', ttlSeconds: 0 } }],
    ['a fractional TTL', { type: 'ttl.override_set', data: { cardKey: 'plan', ttlSeconds: 1.5 } }],
    ['no card key', { type: 'ttl.override_cleared', data: {} }],
  ])('rejects %s when read back from the stream', (_name, raw) => {
    expect(CardEventSchema.safeParse(raw).success).toBe(false);
  });
});
