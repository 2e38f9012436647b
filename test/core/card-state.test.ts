/**
 * The card state as a projection of its events (SPEC section 6): `evolve` folded over event
 * sequences, `keepUntil` retention, and the event vocabulary's schema.
 */
import { describe, expect, it } from 'vitest';
import type { CardComponent } from '../../src/core/components.js';
import { CARD_EVENT_TYPES, CardEventSchema, isCardStateEvent, type CardStateEvent } from '../../src/core/card-events.js';
import { EMPTY_CARD_STATE, evolve, keepUntil, type CardState } from '../../src/core/card-state.js';

const S = 1000;
const T0 = Date.parse('2024-05-01T12:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

const IDENTITY = { workspaceId: 'w_1', customerId: 'c_1', threadId: null, cardKey: 'plan-details' } as const;

const V1: CardComponent[] = [{ componentText: { text: 'Plan: Basic' } }];
const V2: CardComponent[] = [{ componentBadge: { badgeLabel: 'Pro', badgeColor: 'GREEN' } }];

interface RefreshedOptions {
  readonly components?: CardComponent[] | null;
  readonly ttlSeconds?: number;
  readonly upstream?: string;
  readonly email?: string | null;
  readonly externalId?: string | null;
}

function refreshed(at: number, options: RefreshedOptions = {}): CardStateEvent {
  return {
    type: 'card.refreshed',
    data: {
      ...IDENTITY,
      ...('email' in options ? { customerEmail: options.email } : {}),
      ...('externalId' in options ? { customerExternalId: options.externalId } : {}),
      components: options.components === undefined ? V1 : options.components,
      ttlSeconds: options.ttlSeconds ?? 300,
      fetchedAt: iso(at),
      upstream: options.upstream ?? 'billing',
      durationMs: 1234,
    },
  };
}

interface FailedOptions {
  readonly detail?: string;
  readonly status?: number | null;
  readonly email?: string | null;
  readonly externalId?: string | null;
}

function failed(at: number, errorKind: 'retriable' | 'integration', options: FailedOptions = {}): CardStateEvent {
  return {
    type: 'card.refresh_failed',
    data: {
      ...IDENTITY,
      ...('email' in options ? { customerEmail: options.email } : {}),
      ...('externalId' in options ? { customerExternalId: options.externalId } : {}),
      upstream: 'billing',
      errorKind,
      detail: options.detail ?? `${errorKind} failure`,
      status: options.status === undefined ? (errorKind === 'retriable' ? 503 : 404) : options.status,
      failedAt: iso(at),
    },
  };
}

function invalidated(at: number): CardStateEvent {
  return { type: 'card.invalidated', data: { ...IDENTITY, reason: 'operator', invalidatedAt: iso(at) } };
}

function fold(events: readonly CardStateEvent[], from?: CardState): CardState | undefined {
  return events.reduce<CardState | undefined>((state, event) => evolve(state, event), from);
}

function state(partial: Partial<CardState>): CardState {
  return { ...EMPTY_CARD_STATE, ...partial };
}

const data = (at: number, components: CardComponent[] | null = V1, ttlSeconds = 300, upstream = 'billing') => ({
  components,
  ttlSeconds,
  fetchedAt: at,
  upstream,
});

interface SequenceCase {
  readonly name: string;
  readonly events: readonly CardStateEvent[];
  readonly expected: CardState;
}

const sequences: SequenceCase[] = [
  {
    name: 'refreshed → data set, no failure, not invalidated',
    events: [refreshed(T0)],
    expected: state({ data: data(T0) }),
  },
  {
    name: 'refreshed with null components (no data) keeps null components',
    events: [refreshed(T0, { components: null, ttlSeconds: 0 })],
    expected: state({ data: data(T0, null, 0) }),
  },
  {
    name: 'refreshed twice → the second replaces the data entirely',
    events: [refreshed(T0), refreshed(T0 + 60 * S, { components: V2, ttlSeconds: 45, upstream: 'crm' })],
    expected: state({ data: data(T0 + 60 * S, V2, 45, 'crm') }),
  },
  {
    name: 'refresh_failed on nothing → failure recorded, no data',
    events: [failed(T0, 'integration', { detail: 'HTTP 404', status: 404 })],
    expected: state({ failure: { kind: 'integration', at: T0, detail: 'HTTP 404', status: 404 } }),
  },
  {
    name: 'refresh_failed with status null (time-out) keeps the null status',
    events: [failed(T0, 'retriable', { detail: 'timed out', status: null })],
    expected: state({ failure: { kind: 'retriable', at: T0, detail: 'timed out', status: null } }),
  },
  {
    name: 'refreshed then refresh_failed → data kept, failure recorded',
    events: [refreshed(T0), failed(T0 + 10 * S, 'retriable', { detail: 'HTTP 503', status: 503 })],
    expected: state({ data: data(T0), failure: { kind: 'retriable', at: T0 + 10 * S, detail: 'HTTP 503', status: 503 } }),
  },
  {
    name: 'refresh_failed then refreshed → failure cleared',
    events: [failed(T0, 'integration'), refreshed(T0 + 10 * S)],
    expected: state({ data: data(T0 + 10 * S) }),
  },
  {
    name: 'two failures → the last one is recorded',
    events: [failed(T0, 'retriable', { detail: 'first', status: 502 }), failed(T0 + S, 'integration', { detail: 'second', status: 422 })],
    expected: state({ failure: { kind: 'integration', at: T0 + S, detail: 'second', status: 422 } }),
  },
  {
    name: 'invalidated on nothing cached → nothing marked',
    events: [invalidated(T0)],
    expected: EMPTY_CARD_STATE,
  },
  {
    name: 'invalidated with only a failure (no data) → nothing marked',
    events: [failed(T0, 'integration'), invalidated(T0 + S)],
    expected: state({ failure: { kind: 'integration', at: T0, detail: 'integration failure', status: 404 } }),
  },
  {
    name: 'refreshed then invalidated → marked stale at the invalidation instant',
    events: [refreshed(T0), invalidated(T0 + 5 * S)],
    expected: state({ data: data(T0), invalidatedAt: T0 + 5 * S }),
  },
  {
    name: 'invalidated then refreshed → not marked (order matters)',
    events: [refreshed(T0), invalidated(T0 + 5 * S), refreshed(T0 + 6 * S)],
    expected: state({ data: data(T0 + 6 * S) }),
  },
  {
    name: 'invalidated before any data, then refreshed → not marked',
    events: [invalidated(T0), refreshed(T0 + S)],
    expected: state({ data: data(T0 + S) }),
  },
  {
    name: 'refreshed, invalidated, refresh_failed → data and invalidation kept, failure recorded',
    events: [refreshed(T0), invalidated(T0 + S), failed(T0 + 2 * S, 'retriable', { detail: 'down', status: 500 })],
    expected: state({
      data: data(T0),
      invalidatedAt: T0 + S,
      failure: { kind: 'retriable', at: T0 + 2 * S, detail: 'down', status: 500 },
    }),
  },
  {
    name: 'refreshed carries email and external id',
    events: [refreshed(T0, { email: 'alex@grocery.co', externalId: 'cus_9' })],
    expected: state({ data: data(T0), customerEmail: 'alex@grocery.co', customerExternalId: 'cus_9' }),
  },
  {
    name: 'refresh_failed carries email and external id',
    events: [failed(T0, 'integration', { email: 'alex@grocery.co', externalId: 'cus_9' })],
    expected: state({
      failure: { kind: 'integration', at: T0, detail: 'integration failure', status: 404 },
      customerEmail: 'alex@grocery.co',
      customerExternalId: 'cus_9',
    }),
  },
  {
    name: 'identifiers known from an earlier event survive events that do not carry them',
    events: [refreshed(T0, { email: 'alex@grocery.co', externalId: 'cus_9' }), invalidated(T0 + S), failed(T0 + 2 * S, 'retriable'), refreshed(T0 + 3 * S)],
    expected: state({ data: data(T0 + 3 * S), customerEmail: 'alex@grocery.co', customerExternalId: 'cus_9' }),
  },
  {
    name: 'a later event with new identifiers replaces the earlier ones',
    events: [refreshed(T0, { email: 'old@grocery.co', externalId: 'cus_1' }), refreshed(T0 + S, { email: 'new@grocery.co', externalId: 'cus_2' })],
    expected: state({ data: data(T0 + S), customerEmail: 'new@grocery.co', customerExternalId: 'cus_2' }),
  },
];

describe('evolve: event sequences → state', () => {
  it.each(sequences)('$name', ({ events, expected }) => {
    expect(fold(events)).toStrictEqual(expected);
  });

  it('starts from EMPTY_CARD_STATE when nothing is cached (undefined and EMPTY_CARD_STATE give the same result)', () => {
    const event = refreshed(T0, { email: 'a@b.co' });
    expect(evolve(undefined, event)).toStrictEqual(evolve(EMPTY_CARD_STATE, event));
  });

  it('EMPTY_CARD_STATE holds nothing', () => {
    expect(EMPTY_CARD_STATE).toStrictEqual({ data: null, failure: null, invalidatedAt: null, customerEmail: null, customerExternalId: null });
  });

  it('parses fetchedAt, failedAt and invalidatedAt with their milliseconds', () => {
    const at = T0 + 123;
    expect(fold([refreshed(at)])?.data?.fetchedAt).toBe(at);
    expect(fold([failed(at, 'retriable')])?.failure?.at).toBe(at);
    expect(fold([refreshed(T0), invalidated(at)])?.invalidatedAt).toBe(at);
  });
});

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

describe('evolve never mutates its input', () => {
  const fullState = (): CardState =>
    state({
      data: data(T0, [{ componentText: { text: 'frozen' } }]),
      failure: { kind: 'retriable', at: T0 + S, detail: 'down', status: 503 },
      invalidatedAt: T0 + 2 * S,
      customerEmail: 'alex@grocery.co',
      customerExternalId: 'cus_9',
    });
  const events: Array<[string, CardStateEvent]> = [
    ['card.refreshed', refreshed(T0 + 10 * S, { components: V2, email: 'new@grocery.co', externalId: 'cus_2' })],
    ['card.refresh_failed', failed(T0 + 10 * S, 'integration', { email: 'new@grocery.co' })],
    ['card.invalidated', invalidated(T0 + 10 * S)],
  ];

  it.each(events)('%s on a deep-frozen state and event', (_type, event) => {
    const input = deepFreeze(fullState());
    const frozenEvent = deepFreeze(structuredClone(event));
    const before = structuredClone(input);
    const eventBefore = structuredClone(frozenEvent);
    const next = evolve(input, frozenEvent);
    expect(input).toStrictEqual(before);
    expect(frozenEvent).toStrictEqual(eventBefore);
    expect(next).not.toBe(input);
  });
});

describe('keepUntil', () => {
  const RETENTION = { staleSeconds: 3600, integrationErrorTtlSeconds: 300 };
  const DATA_END = T0 + (300 + 3600) * S;

  it.each<[string, CardState, number | null]>([
    ['neither data nor failure → null', EMPTY_CARD_STATE, null],
    ['only an invalidation mark (no data) → null', state({ invalidatedAt: T0 }), null],
    ['data → end of its stale window (fetchedAt + ttl + staleSeconds)', state({ data: data(T0) }), DATA_END],
    ['data with TTL 0 → fetchedAt + staleSeconds', state({ data: data(T0, V1, 0) }), T0 + 3600 * S],
    [
      'integration failure only → end of its negative cache',
      state({ failure: { kind: 'integration', at: T0, detail: 'x', status: 404 } }),
      T0 + 300 * S,
    ],
    [
      'retriable failure only → 60 s, for waiting requests to read its outcome',
      state({ failure: { kind: 'retriable', at: T0, detail: 'x', status: 503 } }),
      T0 + 60 * S,
    ],
    [
      'data and a failure ending earlier → the data window',
      state({ data: data(T0), failure: { kind: 'integration', at: T0 + S, detail: 'x', status: 404 } }),
      DATA_END,
    ],
    [
      'old data and a recent integration failure ending later → the negative cache',
      state({ data: data(T0), failure: { kind: 'integration', at: DATA_END - 10 * S, detail: 'x', status: 404 } }),
      DATA_END - 10 * S + 300 * S,
    ],
    [
      'old data and a recent retriable failure ending later → the failure keep time',
      state({ data: data(T0), failure: { kind: 'retriable', at: DATA_END - 10 * S, detail: 'x', status: 503 } }),
      DATA_END - 10 * S + 60 * S,
    ],
  ])('%s', (_name, input, expected) => {
    expect(keepUntil(input, RETENTION)).toBe(expected);
  });

  it('uses the policy it is given', () => {
    const failure = state({ failure: { kind: 'integration', at: T0, detail: 'x', status: 404 } });
    expect(keepUntil(failure, { staleSeconds: 0, integrationErrorTtlSeconds: 30 })).toBe(T0 + 30 * S);
    expect(keepUntil(state({ data: data(T0) }), { staleSeconds: 10, integrationErrorTtlSeconds: 30 })).toBe(T0 + 310 * S);
  });
});

describe('CardEventSchema (SPEC 6)', () => {
  const valid: Array<[string, unknown]> = [
    [
      'card.refreshed',
      {
        type: 'card.refreshed',
        data: {
          workspaceId: 'w_1',
          customerId: 'c_1',
          threadId: null,
          cardKey: 'plan-details',
          components: [{ componentText: { text: 'Plan: Pro' } }],
          ttlSeconds: 0,
          fetchedAt: '2024-05-01T12:00:00.000Z',
          upstream: 'billing',
          durationMs: 5120,
        },
      },
    ],
    [
      'card.refresh_failed',
      {
        type: 'card.refresh_failed',
        data: {
          workspaceId: 'w_1',
          customerId: 'c_1',
          threadId: 'th_1',
          cardKey: 'plan-details',
          upstream: 'billing',
          errorKind: 'retriable',
          detail: 'upstream did not answer within 30000 ms',
          status: null,
          failedAt: '2024-05-01T12:00:00.000Z',
        },
      },
    ],
    [
      'card.invalidated',
      {
        type: 'card.invalidated',
        data: {
          workspaceId: 'w_1',
          customerId: 'c_1',
          threadId: null,
          cardKey: 'plan-details',
          reason: 'admin invalidate',
          invalidatedAt: '2024-05-01T12:00:00.000Z',
        },
      },
    ],
    ['ttl.override_set', { type: 'ttl.override_set', data: { cardKey: 'plan-details', ttlSeconds: 60 } }],
    ['ttl.override_cleared', { type: 'ttl.override_cleared', data: { cardKey: 'plan-details' } }],
  ];

  it.each(valid)('accepts %s with the SPEC fields', (type, event) => {
    const parsed = CardEventSchema.safeParse(event);
    expect(parsed.success).toBe(true);
    expect(parsed.data?.type).toBe(type);
  });

  it('covers every event type listed in CARD_EVENT_TYPES', () => {
    expect(valid.map(([type]) => type).sort()).toEqual([...CARD_EVENT_TYPES].sort());
  });

  it('accepts card.refresh_failed with errorKind integration and an HTTP status', () => {
    const event = {
      type: 'card.refresh_failed',
      data: {
        workspaceId: 'w_1',
        customerId: 'c_1',
        threadId: null,
        cardKey: 'plan-details',
        customerEmail: 'alex@grocery.co',
        customerExternalId: null,
        upstream: 'billing',
        errorKind: 'integration',
        detail: 'upstream answered HTTP 404',
        status: 404,
        failedAt: '2024-05-01T12:00:00.000Z',
      },
    };
    expect(CardEventSchema.safeParse(event).success).toBe(true);
  });

  it.each<[string, unknown]>([
    ['an unknown type', { type: 'card.deleted', data: { cardKey: 'plan-details' } }],
    ['no data', { type: 'ttl.override_cleared' }],
    [
      'a refresh_failed with an unknown errorKind',
      {
        type: 'card.refresh_failed',
        data: {
          workspaceId: 'w_1',
          customerId: 'c_1',
          threadId: null,
          cardKey: 'k',
          upstream: 'billing',
          errorKind: 'fatal',
          detail: 'x',
          status: 500,
          failedAt: '2024-05-01T12:00:00.000Z',
        },
      },
    ],
    [
      'a refreshed without fetchedAt',
      {
        type: 'card.refreshed',
        data: { workspaceId: 'w_1', customerId: 'c_1', threadId: null, cardKey: 'k', components: null, ttlSeconds: 60, upstream: 'b', durationMs: 1 },
      },
    ],
    [
      'a refreshed with a fetchedAt that is not ISO 8601',
      {
        type: 'card.refreshed',
        data: {
          workspaceId: 'w_1',
          customerId: 'c_1',
          threadId: null,
          cardKey: 'k',
          components: null,
          ttlSeconds: 60,
          fetchedAt: 'yesterday',
          upstream: 'b',
          durationMs: 1,
        },
      },
    ],
    [
      'a refreshed with a negative ttlSeconds',
      {
        type: 'card.refreshed',
        data: {
          workspaceId: 'w_1',
          customerId: 'c_1',
          threadId: null,
          cardKey: 'k',
          components: null,
          ttlSeconds: -1,
          fetchedAt: '2024-05-01T12:00:00.000Z',
          upstream: 'b',
          durationMs: 1,
        },
      },
    ],
    [
      'a refreshed with an invalid component',
      {
        type: 'card.refreshed',
        data: {
          workspaceId: 'w_1',
          customerId: 'c_1',
          threadId: null,
          cardKey: 'k',
          components: [{ componentNope: {} }],
          ttlSeconds: 60,
          fetchedAt: '2024-05-01T12:00:00.000Z',
          upstream: 'b',
          durationMs: 1,
        },
      },
    ],
    ['a ttl.override_set with ttlSeconds 0', { type: 'ttl.override_set', data: { cardKey: 'k', ttlSeconds: 0 } }],
    ['a ttl.override_set with a fractional ttlSeconds', { type: 'ttl.override_set', data: { cardKey: 'k', ttlSeconds: 1.5 } }],
  ])('rejects %s', (_name, event) => {
    expect(CardEventSchema.safeParse(event).success).toBe(false);
  });

  it('isCardStateEvent is true exactly for the three card events', () => {
    const flags = valid.map(([type, event]) => [type, isCardStateEvent(CardEventSchema.parse(event))]);
    expect(flags).toEqual([
      ['card.refreshed', true],
      ['card.refresh_failed', true],
      ['card.invalidated', true],
      ['ttl.override_set', false],
      ['ttl.override_cleared', false],
    ]);
  });

  it('a parsed refreshed event evolves into the state it describes', () => {
    const parsed = CardEventSchema.parse(valid[0]![1]);
    if (!isCardStateEvent(parsed)) throw new Error('expected a card state event');
    expect(evolve(undefined, parsed)).toStrictEqual(
      state({ data: data(T0, [{ componentText: { text: 'Plan: Pro' } }], 0) }),
    );
  });
});
