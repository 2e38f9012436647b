/**
 * The simulated legacy card API used by `npm run demo` and docker-compose, and the fake upstream
 * test helper: both are real HTTP servers, exercised over the network.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CardComponentsSchema } from '../../src/core/components.js';
import { startLegacyApi, type LegacyApi } from '../../src/demo/legacy-api.js';
import { cardsReply, startFakeUpstream, textOf, type FakeUpstream } from '../helpers/fake-upstream.js';

const ALL_KEYS = ['subscription-details', 'latest-invoices', 'usage', 'customer-details'];

interface Card {
  key: string;
  timeToLiveSeconds: number | null;
  components: unknown[];
}

function cardRequest(customerId: string, cardKeys: string[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cardKeys,
    customer: { id: customerId, email: `${customerId}@example.com`, externalId: null },
    thread: null,
    tenant: null,
    ...extra,
  });
}

async function post(url: string, body: string): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  return { status: res.status, json: await res.json() };
}

/** A card's components without its "Generated at" line, which changes on every load. */
function withoutGeneratedAt(card: Card): unknown[] {
  return card.components.filter((c) => !JSON.stringify(c).includes('Generated at'));
}

describe('legacy card API (demo)', () => {
  let api: LegacyApi | undefined;
  const lines: string[] = [];
  afterEach(async () => {
    await api?.close();
    api = undefined;
    lines.length = 0;
  });

  const start = async (failureRate: number): Promise<LegacyApi> => {
    api = await startLegacyApi({ minLatencyMs: 0, maxLatencyMs: 5, failureRate, log: (l) => lines.push(l) });
    return api;
  };

  it('returns the four cards, each valid under the Plain UI component schema, with nothing dropped', async () => {
    const { url } = await start(0);
    const { status, json } = await post(url, cardRequest('c_valid', ALL_KEYS));
    expect(status).toBe(200);
    const cards = json.cards as Card[];
    expect(cards.map((c) => c.key)).toEqual(ALL_KEYS);
    for (const card of cards) {
      expect(card.timeToLiveSeconds).toBeNull();
      const parsed = CardComponentsSchema.safeParse(card.components);
      expect(parsed.success, `${card.key}: ${parsed.success ? '' : JSON.stringify(parsed.error.issues)}`).toBe(true);
      // The schema drops unknown fields; equal output means every field we send is one Plain knows.
      expect(parsed.data).toEqual(card.components);
      expect(JSON.stringify(card.components)).toMatch(/Generated at \d{4}-\d\d-\d\dT/);
    }
    const kinds = (key: string): string => JSON.stringify(cards.find((c) => c.key === key)?.components);
    expect(kinds('subscription-details')).toContain('componentBadge');
    expect(kinds('latest-invoices').match(/componentLinkButton/g)).toHaveLength(3);
    expect(kinds('customer-details')).toContain('componentCopyButton');
    expect(kinds('customer-details')).toContain('c_valid@example.com');
    expect(lines.some((l) => l.includes('POST /cards -> 200') && l.includes('customer=c_valid'))).toBe(true);
  });

  it('is deterministic per customer apart from the generated-at line, and differs between customers', async () => {
    const { url } = await start(0);
    const load = async (id: string): Promise<Card[]> => (await post(url, cardRequest(id, ALL_KEYS))).json.cards;
    const first = await load('c_same');
    await new Promise((r) => setTimeout(r, 5)); // a later "Generated at"
    const second = await load('c_same');
    expect(second.map(withoutGeneratedAt)).toEqual(first.map(withoutGeneratedAt));

    // Across a handful of customers the plans/amounts are not all the same.
    const others = await Promise.all(['c_a', 'c_b', 'c_c', 'c_d', 'c_e', 'c_f'].map(load));
    const subscriptions = new Set(others.map((cards) => JSON.stringify(withoutGeneratedAt(cards[0] as Card))));
    expect(subscriptions.size).toBeGreaterThan(1);
  });

  it('omits unknown keys and answers only the ones it knows', async () => {
    const { url } = await start(0);
    const { status, json } = await post(url, cardRequest('c_unknown', ['nope', 'usage', 'also-unknown']));
    expect(status).toBe(200);
    expect((json.cards as Card[]).map((c) => c.key)).toEqual(['usage']);
  });

  it('answers 503 to every card request when failureRate is 1, and counts them', async () => {
    const legacy = await start(1);
    for (let i = 0; i < 3; i++) {
      const { status, json } = await post(legacy.url, cardRequest('c_fail', ['usage']));
      expect(status).toBe(503);
      expect(json.error).toBe('unavailable');
    }
    expect(legacy.stats()).toEqual({ requests: 3, failures: 3 });
  });

  it('rejects non-POST with 405 and bad bodies with 400', async () => {
    const legacy = await start(0);
    const get = await fetch(legacy.url);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');

    expect((await post(legacy.url, '{not json')).status).toBe(400);
    expect((await post(legacy.url, '[]')).status).toBe(400);
    expect((await post(legacy.url, JSON.stringify({ cardKeys: ['usage'] }))).status).toBe(400);
    expect((await post(legacy.url, JSON.stringify({ cardKeys: 'usage', customer: { id: 'c' } }))).status).toBe(400);
    // Rejected requests are not card requests.
    expect(legacy.stats().requests).toBe(0);
  });

  it('close() cancels requests still waiting out their latency', async () => {
    api = await startLegacyApi({ minLatencyMs: 60_000, maxLatencyMs: 60_000, failureRate: 0 });
    const pending = post(api.url, cardRequest('c_slow', ['usage'])).then(
      () => 'answered',
      () => 'dropped',
    );
    await expect.poll(() => api?.stats().requests).toBe(1);
    const started = Date.now();
    await api.close();
    expect(await pending).toBe('dropped');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('fake upstream helper', () => {
  let upstream: FakeUpstream | undefined;
  afterEach(async () => {
    await upstream?.close();
    upstream = undefined;
  });

  it('records calls and answers valid cards naming key and customer by default', async () => {
    upstream = await startFakeUpstream();
    const { status, json } = await post(upstream.url, cardRequest('c_rec', ['a', 'b']));
    expect(status).toBe(200);
    expect(json.cards.map(textOf)).toEqual(['a for c_rec', 'b for c_rec']);
    expect(CardComponentsSchema.safeParse(json.cards[0].components).success).toBe(true);
    expect(upstream.calls).toHaveLength(1);
    const call = upstream.calls[0]!;
    expect(call).toMatchObject({ keys: ['a', 'b'], customerId: 'c_rec', method: 'POST', path: '/cards' });
    expect(call.headers['content-type']).toBe('application/json');
    expect(JSON.parse(call.rawBody)).toEqual(call.body);

    expect(cardsReply(call, { ttl: 60, text: (k) => `custom ${k}` }).cards[0]).toEqual({
      key: 'a',
      timeToLiveSeconds: 60,
      components: [{ componentText: { text: 'custom a' } }],
    });
  });

  it('tracks maxInFlight across delayed replies and waits for calls', async () => {
    upstream = await startFakeUpstream((call) => ({ delayMs: 100, body: cardsReply(call) }));
    const replies = Promise.all([1, 2, 3].map((i) => post(upstream!.url, cardRequest(`c_${i}`, ['k']))));
    await upstream.waitForCalls(3);
    expect(upstream.inFlight).toBe(3);
    expect((await replies).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(upstream.maxInFlight).toBe(3);
    await expect.poll(() => upstream?.inFlight).toBe(0);
    await expect(upstream.waitForCalls(4, 50)).rejects.toThrow(/expected at least 4 call\(s\) within 50 ms, got 3/);
  });

  it('hangUp drops the connection without an answer; setHandler switches replies', async () => {
    upstream = await startFakeUpstream(() => ({ hangUp: true }));
    await expect(post(upstream.url, cardRequest('c_h', ['k']))).rejects.toThrow();
    upstream.setHandler(() => ({ status: 503, rawBody: 'not json at all' }));
    const res = await fetch(upstream.url, { method: 'POST', body: cardRequest('c_h', ['k']) });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('not json at all');
    expect(upstream.calls).toHaveLength(2);
  });

  it('close() cancels a pending delayed reply promptly', async () => {
    upstream = await startFakeUpstream(() => ({ delayMs: 60_000, body: {} }));
    const pending = post(upstream.url, cardRequest('c_d', ['k'])).then(
      () => 'answered',
      () => 'dropped',
    );
    await upstream.waitForCalls(1);
    const started = Date.now();
    await upstream.close();
    expect(await pending).toBe('dropped');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
