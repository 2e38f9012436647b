/**
 * The events one upstream call produces (SPEC 2.2, 5, 6) and its metrics outcome (SPEC 8).
 */
import { describe, expect, it } from 'vitest';
import type { CardRef } from '../../src/core/card-ref.js';
import type { CardStateEvent } from '../../src/core/card-events.js';
import { CardEventSchema } from '../../src/core/card-events.js';
import { parseUpstreamResponse, type UpstreamCardResult } from '../../src/core/plain-protocol.js';
import { classifyStatus, transportFailure, type UpstreamFailure } from '../../src/core/upstream-failure.js';
import { callOutcome, eventsForResult, type LoadContext } from '../../src/refresh/card-loads.js';
import type { UpstreamResult } from '../../src/upstream/upstream-client.js';

const NOW = Date.parse('2024-05-01T12:34:56.789Z');
const NOW_ISO = '2024-05-01T12:34:56.789Z';

const ref = (cardKey: string, threadId: string | null = null): CardRef => ({ workspaceId: 'w_1', customerId: 'c_1', threadId, cardKey });

const CARD_INFO: Record<string, { upstream: string; ttlSeconds: number; overrideTtlSeconds: number | null }> = {
  plan: { upstream: 'billing', ttlSeconds: 300, overrideTtlSeconds: null },
  invoices: { upstream: 'billing', ttlSeconds: 600, overrideTtlSeconds: null },
  usage: { upstream: 'billing', ttlSeconds: 120, overrideTtlSeconds: 30 },
  orders: { upstream: 'erp', ttlSeconds: 900, overrideTtlSeconds: null },
};

const CTX: LoadContext = {
  now: NOW,
  customerEmail: 'alex@grocery.co',
  customerExternalId: 'cus_9',
  trigger: 'request',
  cardInfo: (cardKey) => {
    const info = CARD_INFO[cardKey];
    if (!info) throw new Error(`no card info for ${cardKey}`);
    return info;
  },
};

function failureResult(failure: UpstreamFailure, durationMs = 1500): UpstreamResult {
  return { ok: false, failure, durationMs };
}

function okResult(body: unknown, keys: readonly string[], durationMs = 2500): UpstreamResult {
  const parsed = parseUpstreamResponse(body, keys);
  if (!parsed.ok) throw new Error(`test body is a broken envelope: ${parsed.detail}`);
  return { ok: true, cards: parsed.cards, durationMs };
}

const identity = (r: CardRef) => ({
  workspaceId: r.workspaceId,
  customerId: r.customerId,
  threadId: r.threadId,
  cardKey: r.cardKey,
  customerEmail: 'alex@grocery.co',
  customerExternalId: 'cus_9',
});

function failedEvent(r: CardRef, upstream: string, failure: UpstreamFailure): CardStateEvent {
  return {
    type: 'card.refresh_failed',
    data: { ...identity(r), upstream, errorKind: failure.kind, detail: failure.detail, status: failure.status, failedAt: NOW_ISO, trigger: 'request' },
  };
}

const TEXT = (text: string) => [{ componentText: { text } }];

describe('eventsForResult: the whole call failed', () => {
  const refs = [ref('plan'), ref('invoices'), ref('usage')];

  it.each<[string, UpstreamFailure]>([
    ['HTTP 503 (retriable)', classifyStatus(503)],
    ['HTTP 429 (retriable)', classifyStatus(429)],
    ['HTTP 404 (integration)', classifyStatus(404)],
    ['time-out (retriable, no status)', transportFailure(true, 30_000, 'AbortError')],
    ['connection refused (retriable, no status)', transportFailure(false, 30_000, 'ECONNREFUSED')],
    ['broken envelope (integration, status 200)', { kind: 'integration', detail: 'response body has no "cards" array', status: 200 }],
  ])('%s → one refresh_failed per card with its kind, status and detail', (_name, failure) => {
    const events = eventsForResult(refs, failureResult(failure), CTX);
    expect(events).toStrictEqual(refs.map((r) => failedEvent(r, 'billing', failure)));
  });

  it('names each card’s own configured upstream', () => {
    const failure = classifyStatus(500);
    const events = eventsForResult([ref('plan'), ref('orders')], failureResult(failure), CTX);
    expect(events.map((e) => e.type === 'card.refresh_failed' && e.data.upstream)).toEqual(['billing', 'erp']);
  });

  it('produces no events for no cards', () => {
    expect(eventsForResult([], failureResult(classifyStatus(500)), CTX)).toEqual([]);
  });
});

describe('eventsForResult: an ok envelope', () => {
  const keys = ['plan', 'invoices', 'usage', 'orders'];
  const body = {
    cards: [
      { key: 'plan', timeToLiveSeconds: null, components: TEXT('Plan: Pro') },
      { key: 'invoices', components: [{ componentText: { text: 'Invoices' } }, { componentNope: {} }] }, // invalid card
      { key: 'usage', timeToLiveSeconds: 900, components: TEXT('Usage: 80%') },
      // 'orders' missing
      { key: 'extra', components: TEXT('ignored') },
    ],
  };
  const result = okResult(body, keys);
  const refs = keys.map((k) => ref(k, 'th_1'));
  const events = eventsForResult(refs, result, CTX);

  it('gives one event per requested card, in order', () => {
    expect(events.map((e) => [e.type, e.data.cardKey])).toEqual([
      ['card.refreshed', 'plan'],
      ['card.refresh_failed', 'invoices'],
      ['card.refreshed', 'usage'],
      ['card.refresh_failed', 'orders'],
    ]);
  });

  it('fails the invalid card as an integration error with status 200 and the validation detail', () => {
    const event = events[1]!;
    expect(event.type).toBe('card.refresh_failed');
    if (event.type !== 'card.refresh_failed') return;
    const parsed = result.ok ? result.cards.get('invoices') : undefined;
    expect(parsed?.ok).toBe(false);
    expect(event.data).toStrictEqual({
      ...identity(refs[1]!),
      upstream: 'billing',
      errorKind: 'integration',
      detail: parsed && !parsed.ok ? parsed.detail : 'unreachable',
      status: 200,
      failedAt: NOW_ISO,
      trigger: 'request',
    });
  });

  it('fails the missing card as an integration error with status 200 naming the card', () => {
    const event = events[3]!;
    expect(event.type).toBe('card.refresh_failed');
    if (event.type !== 'card.refresh_failed') return;
    expect(event.data).toMatchObject({ ...identity(refs[3]!), upstream: 'erp', errorKind: 'integration', status: 200, failedAt: NOW_ISO });
    expect(event.data.detail).toContain('orders');
    expect(event.data.detail).toContain('missing');
  });

  it('refreshes the good cards with their components, fetchedAt from now, upstream, duration and identity', () => {
    expect(events[0]).toStrictEqual({
      type: 'card.refreshed',
      data: {
        ...identity(refs[0]!),
        components: TEXT('Plan: Pro'),
        ttlSeconds: 300, // upstream null → configured
        ttlSource: 'config',
        fetchedAt: NOW_ISO,
        upstream: 'billing',
        durationMs: 2500,
        trigger: 'request',
      },
    });
    expect(events[2]).toStrictEqual({
      type: 'card.refreshed',
      data: {
        ...identity(refs[2]!),
        components: TEXT('Usage: 80%'),
        ttlSeconds: 30, // override beats upstream 900
        ttlSource: 'override',
        fetchedAt: NOW_ISO,
        upstream: 'billing',
        durationMs: 2500,
        trigger: 'request',
      },
    });
  });

  it('produces events that the event schema accepts', () => {
    for (const event of events) expect(CardEventSchema.safeParse(event).success).toBe(true);
  });

  it('treats a key absent from a hand-built cards map as missing (integration, status 200)', () => {
    const handBuilt: UpstreamResult = {
      ok: true,
      cards: new Map<string, UpstreamCardResult>([['plan', { ok: true, components: null, timeToLiveSeconds: null }]]),
      durationMs: 10,
    };
    const [planEvent, ordersEvent] = eventsForResult([ref('plan'), ref('orders')], handBuilt, CTX);
    expect(planEvent?.type).toBe('card.refreshed');
    expect(ordersEvent?.type).toBe('card.refresh_failed');
    if (ordersEvent?.type !== 'card.refresh_failed') return;
    expect(ordersEvent.data).toMatchObject({ errorKind: 'integration', status: 200, upstream: 'erp' });
    expect(ordersEvent.data.detail).toContain('"orders"');
  });
});

describe('eventsForResult: TTL precedence into ttlSeconds', () => {
  const cardInfo = (overrideTtlSeconds: number | null) => () => ({ upstream: 'billing', ttlSeconds: 300, overrideTtlSeconds });

  it.each<[string, number | null, number | null, number, string]>([
    ['override beats upstream', 45, 900, 45, 'override'],
    ['override beats upstream 0', 45, 0, 45, 'override'],
    ['override beats configured', 45, null, 45, 'override'],
    ['upstream beats configured', null, 900, 900, 'upstream'],
    ['upstream 0 is respected', null, 0, 0, 'upstream'],
    ['configured when upstream gives none', null, null, 300, 'config'],
  ])('%s', (_name, override, upstreamTtl, expected, source) => {
    const result: UpstreamResult = {
      ok: true,
      cards: new Map<string, UpstreamCardResult>([['plan', { ok: true, components: TEXT('x'), timeToLiveSeconds: upstreamTtl }]]),
      durationMs: 1,
    };
    const [event] = eventsForResult([ref('plan')], result, { ...CTX, cardInfo: cardInfo(override) });
    expect(event?.type).toBe('card.refreshed');
    if (event?.type === 'card.refreshed') expect([event.data.ttlSeconds, event.data.ttlSource]).toEqual([expected, source]);
  });

  it('reads timeToLiveSeconds from a parsed upstream body', () => {
    const result = okResult({ cards: [{ key: 'plan', timeToLiveSeconds: 0, components: null }] }, ['plan']);
    const [event] = eventsForResult([ref('plan')], result, CTX);
    expect(event?.type === 'card.refreshed' && event.data.ttlSeconds).toBe(0);
  });
});

describe('eventsForResult: time and customer identifiers', () => {
  it('fetchedAt and failedAt are the ISO 8601 form of now, with milliseconds', () => {
    const ctx = { ...CTX, now: Date.parse('2030-01-02T03:04:05.006Z') };
    const ok = eventsForResult([ref('plan')], okResult({ cards: [{ key: 'plan', components: null }] }, ['plan']), ctx);
    const failed = eventsForResult([ref('plan')], failureResult(classifyStatus(502)), ctx);
    expect(ok[0]?.type === 'card.refreshed' && ok[0].data.fetchedAt).toBe('2030-01-02T03:04:05.006Z');
    expect(failed[0]?.type === 'card.refresh_failed' && failed[0].data.failedAt).toBe('2030-01-02T03:04:05.006Z');
  });

  it('carries null identifiers when the customer has none', () => {
    const ctx = { ...CTX, customerEmail: null, customerExternalId: null };
    const [event] = eventsForResult([ref('plan')], failureResult(classifyStatus(500)), ctx);
    expect(event?.data).toMatchObject({ customerEmail: null, customerExternalId: null });
  });
});

describe('callOutcome', () => {
  const allOk = okResult(
    { cards: [{ key: 'plan', components: null }, { key: 'invoices', components: TEXT('x') }] },
    ['plan', 'invoices'],
  );
  const oneMissing = okResult({ cards: [{ key: 'plan', components: null }] }, ['plan', 'invoices']);
  const oneInvalid = okResult(
    { cards: [{ key: 'plan', components: null }, { key: 'invoices', timeToLiveSeconds: -5, components: null }] },
    ['plan', 'invoices'],
  );

  it.each<[string, UpstreamResult, readonly string[], string]>([
    ['every key loaded', allOk, ['plan', 'invoices'], 'ok'],
    ['one key missing from the response', oneMissing, ['plan', 'invoices'], 'integration_error'],
    ['one key invalid', oneInvalid, ['plan', 'invoices'], 'integration_error'],
    ['a requested key absent from the cards map', allOk, ['plan', 'invoices', 'orders'], 'integration_error'],
    ['a whole-call retriable failure (HTTP 503)', failureResult(classifyStatus(503)), ['plan'], 'retriable_error'],
    ['a whole-call time-out', failureResult(transportFailure(true, 1000, 'x')), ['plan'], 'retriable_error'],
    ['a whole-call integration failure (HTTP 404)', failureResult(classifyStatus(404)), ['plan'], 'integration_error'],
    [
      'a broken envelope',
      failureResult({ kind: 'integration', detail: 'not JSON', status: 200 }),
      ['plan', 'invoices'],
      'integration_error',
    ],
  ])('%s → %s', (_name, result, keys, expected) => {
    expect(callOutcome(result, keys)).toBe(expected);
  });
});
