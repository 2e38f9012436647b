/**
 * SPEC 11, push reload: a real cardproxy (real Redis, real BullMQ worker) in front of a slow fake
 * legacy API, talking to a fake Plain GraphQL API at the network edge.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import type { PlainReloadOutcome } from '../../src/observability/metrics.js';
import { signBody } from '../../src/core/signature.js';
import { cardsReply, textOf, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startFakePlainApi, rateLimited, FAKE_PLAIN_API_KEY, type FakePlainApi } from '../helpers/fake-plain-api.js';
import {
  cardsBody,
  cleanupProxies,
  eventually,
  ManualClock,
  postCards,
  redisModes,
  startTestProxy,
  startTestUpstream,
  testConfig,
  type RedisMode,
  type TestProxy,
} from '../helpers/harness.js';

afterEach(cleanupProxies);

const CONFIGS = [
  { id: 'cc_alpha', key: 'alpha' },
  { id: 'cc_beta', key: 'beta' },
];
/** Longer than the budget: the first answer is the placeholder, the card lands a little later. */
const SLOW_MS = 1100;

/** The fake legacy API, slower than the budget. */
async function slowUpstream(): Promise<FakeUpstream> {
  return startTestUpstream((call) => ({ body: cardsReply(call), delayMs: SLOW_MS }));
}

function pushConfig(legacy: FakeUpstream, plain: FakePlainApi, overrides: Record<string, unknown> = {}, api: Record<string, unknown> = {}, mode: RedisMode = 'single'): Config {
  return testConfig(legacy.url, {
    budgetMs: 800,
    plain: { signingSecrets: ['plain-secret'], api: { url: plain.url, apiKey: FAKE_PLAIN_API_KEY, ...api } },
    upstreams: { legacy: { url: legacy.url, timeoutMs: 5000, concurrency: 4, retries: 0 } },
    cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy', scope: 'thread' } },
    ...overrides,
  }, mode);
}

const signed = (body: unknown) => {
  const text = JSON.stringify(body);
  return { text, signature: signBody('plain-secret', text) };
};

async function post(proxy: TestProxy, body: unknown) {
  const { text, signature } = signed(body);
  return postCards(proxy, text, { 'plain-request-signature': signature });
}

async function reloadOutcomes(proxy: TestProxy): Promise<Record<PlainReloadOutcome, number>> {
  const { values } = await proxy.metrics.plainReloads.get();
  return Object.fromEntries(values.map((v) => [v.labels.outcome, v.value])) as Record<PlainReloadOutcome, number>;
}

/** Waits until the outcome counts are `expected` (pushes finish after Plain saw them), then asserts them. */
async function expectOutcomes(proxy: TestProxy, expected: Record<PlainReloadOutcome, number>): Promise<void> {
  const same = async () => JSON.stringify(await reloadOutcomes(proxy)) === JSON.stringify(expected);
  await eventually(same, 5000, `outcomes ${JSON.stringify(expected)}`).catch(() => {});
  expect(await reloadOutcomes(proxy)).toEqual(expected);
}

/** Long enough for anything still on its way to show up. */
const settle = () => new Promise((r) => setTimeout(r, 300));

describe('push reload to Plain (SPEC 11)', () => {
  it.each(redisModes())('heals placeholders: one mutation per card and context, with Plain’s config ids and the thread id or null (%s Redis)', async (mode) => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const proxy = await startTestProxy(pushConfig(legacy, plain, {}, {}, mode));

    const [inThread, outsideThread] = await Promise.all([
      post(proxy, cardsBody(['alpha', 'beta'], 'c_1', { thread: { id: 'th_1', externalId: null } })),
      post(proxy, cardsBody(['alpha'], 'c_1')),
    ]);
    expect(inThread.body.cards.map((c: { key: string; timeToLiveSeconds: number }) => [c.key, c.timeToLiveSeconds])).toEqual([
      ['alpha', 15],
      ['beta', 15],
    ]);
    expect(outsideThread.body.cards[0].timeToLiveSeconds).toBe(15); // joined the same refresh: placeholder too

    await plain.waitForReloads(3);
    await settle();
    expect(legacy.calls).toHaveLength(1);
    expect(plain.reloads).toHaveLength(3);
    expect(plain.reloads).toEqual(
      expect.arrayContaining([
        { customerId: 'c_1', customerCardConfigId: 'cc_alpha', threadId: null },
        { customerId: 'c_1', customerCardConfigId: 'cc_alpha', threadId: 'th_1' },
        { customerId: 'c_1', customerCardConfigId: 'cc_beta', threadId: 'th_1' },
      ]),
    );
    expect(plain.count('configs')).toBe(1);
    for (const call of plain.calls) expect(call.authorization).toBe(`Bearer ${FAKE_PLAIN_API_KEY}`);
    await expectOutcomes(proxy, { ok: 3, error: 0, rate_limited: 0, skipped: 0 });
    // The key is sent to Plain and nowhere else.
    expect(proxy.logs.raw.join('\n')).not.toContain(FAKE_PLAIN_API_KEY);
    expect(proxy.logs.find('pushed a reload to Plain')).toHaveLength(3);
  });

  it('answers the follow-up request Plain sends after the mutation from the cache: no manual reload, no upstream call', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const proxy = await startTestProxy(pushConfig(legacy, plain), 'start', { listen: true });
    const followUps: Array<{ status: number; body: any }> = [];
    const sendFollowUp = async (input: { customerId: string; threadId: string | null }) => {
      // As Plain does: the reloaded card alone, for the customer and thread of the instance, signed.
      const body = signed(cardsBody(['alpha'], input.customerId, { thread: input.threadId ? { id: input.threadId, externalId: null } : null }));
      const res = await fetch(`${proxy.url}/cards`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_test', 'plain-request-signature': body.signature },
        body: body.text,
      });
      followUps.push({ status: res.status, body: await res.json() });
    };
    plain.onReload(async (input) => {
      await sendFollowUp(input).catch((err: unknown) => void followUps.push({ status: -1, body: String(err) }));
    });

    const first = await post(proxy, cardsBody(['alpha'], 'c_1', { thread: { id: 'th_1', externalId: null } }));
    expect(first.body.cards[0].timeToLiveSeconds).toBe(15);
    await eventually(() => followUps.length === 1, 5000, 'the follow-up request');
    await settle();

    expect(followUps[0]!.status).toBe(200);
    expect(followUps[0]!.body.cards).toHaveLength(1);
    expect(textOf(followUps[0]!.body.cards[0])).toBe('alpha for c_1');
    expect(followUps[0]!.body.cards[0].timeToLiveSeconds).toBe(240); // fresh: 300 s less the refresh-ahead lead
    expect(legacy.calls).toHaveLength(1);
    expect(plain.reloads).toEqual([{ customerId: 'c_1', customerCardConfigId: 'cc_alpha', threadId: 'th_1' }]);
    const lookups = Object.fromEntries((await proxy.metrics.cardLookups.get()).values.map((v) => [v.labels.result, v.value]));
    expect(lookups).toEqual({ miss: 1, fresh: 1 });
  });

  it.each(redisModes())('is sent by the worker process that landed the card; the serve process answers the follow-up from the cache (%s Redis)', async (mode) => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const config = pushConfig(legacy, plain, {}, {}, mode);
    const serve = await startTestProxy(config, 'serve', { listen: true });
    const worker = await startTestProxy(config, 'worker');
    const followUps: number[] = [];
    plain.onReload(async (input) => {
      const body = signed(cardsBody(['alpha'], input.customerId, { thread: null }));
      const res = await fetch(`${serve.url}/cards`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_test', 'plain-request-signature': body.signature },
        body: body.text,
      });
      followUps.push(res.status);
      await res.body?.cancel();
    });

    expect((await post(serve, cardsBody(['alpha'], 'c_1'))).body.cards[0].timeToLiveSeconds).toBe(15);
    await eventually(() => followUps.length === 1, 5000, 'the follow-up request');
    await settle();
    expect(followUps).toEqual([200]);
    expect(legacy.calls).toHaveLength(1);
    await expectOutcomes(worker, { ok: 1, error: 0, rate_limited: 0, skipped: 0 });
    await expectOutcomes(serve, { ok: 0, error: 0, rate_limited: 0, skipped: 0 });
    const lookups = Object.fromEntries((await serve.metrics.cardLookups.get()).values.map((v) => [v.labels.result, v.value]));
    expect(lookups).toEqual({ miss: 1, fresh: 1 });
  });

  it('pushes nothing for a copy that a manual reload replaces itself, so that no second reload follows', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const proxy = await startTestProxy(pushConfig(legacy, plain));
    const inThread = cardsBody(['alpha'], 'c_1', { thread: { id: 'th_1', externalId: null } });

    expect((await post(proxy, inThread)).body.cards[0].timeToLiveSeconds).toBe(15); // placeholder
    const reload = await post(proxy, inThread); // the agent presses reload; the card lands meanwhile
    expect(textOf(reload.body.cards[0])).toBe('alpha for c_1');
    await settle();
    expect(legacy.calls).toHaveLength(1);
    expect(plain.calls).toEqual([]);
    const lookups = Object.fromEntries((await proxy.metrics.cardLookups.get()).values.map((v) => [v.labels.result, v.value]));
    expect(lookups).toEqual({ miss: 1, reload: 1 });
  });

  it('heals error components once the card loads, and sends nothing for a context that was served data', async () => {
    const legacy = await startTestUpstream(() => ({ status: 503 }));
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const proxy = await startTestProxy(pushConfig(legacy, plain));

    const failed = await post(proxy, cardsBody(['alpha'], 'c_1', { thread: { id: 'th_1', externalId: null } }));
    expect(failed.body.cards[0].timeToLiveSeconds).toBe(15); // errorComponents after a retriable failure
    legacy.setHandler((call) => ({ body: cardsReply(call) }));
    // Another thread asks: the retriable failure is not negatively cached, so this loads the card.
    const loaded = await post(proxy, cardsBody(['alpha'], 'c_1', { thread: { id: 'th_2', externalId: null } }));
    expect(textOf(loaded.body.cards[0])).toBe('alpha for c_1');

    await plain.waitForReloads(1);
    await settle();
    expect(plain.reloads).toEqual([{ customerId: 'c_1', customerCardConfigId: 'cc_alpha', threadId: 'th_1' }]);
    await expectOutcomes(proxy, { ok: 1, error: 0, rate_limited: 0, skipped: 0 });
  });

  it('sends nothing for cards that were served with data, fresh or stale', async () => {
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call, { ttl: 10 }) }));
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const clock = new ManualClock();
    const proxy = await startTestProxy(pushConfig(legacy, plain, { budgetMs: 2000 }), 'start', { clock });

    const cold = await post(proxy, cardsBody(['alpha', 'beta'], 'c_1', { thread: { id: 'th_1', externalId: null } }));
    expect(cold.body.cards.map((c: unknown) => textOf(c))).toEqual(['alpha for c_1', 'beta for c_1']);
    clock.advance(11_000);
    const stale = await post(proxy, cardsBody(['alpha', 'beta'], 'c_1', { thread: { id: 'th_1', externalId: null } }));
    expect(stale.body.cards.map((c: { timeToLiveSeconds: number }) => c.timeToLiveSeconds)).toEqual([15, 15]);
    await legacy.waitForCalls(2);
    await eventually(async () => (await proxy.metrics.eventsAppended.get()).values.reduce((n, v) => n + v.value, 0) === 4, 3000, 'the stale refresh');
    await settle();
    expect(plain.calls).toEqual([]);
    await expectOutcomes(proxy, { ok: 0, error: 0, rate_limited: 0, skipped: 0 });
  });

  it('skips card keys Plain does not know, logs that once, and reads the configs again at most once a minute', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: [{ id: 'cc_alpha', key: 'alpha' }] });
    const clock = new ManualClock();
    const proxy = await startTestProxy(pushConfig(legacy, plain, { cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy' } } }), 'start', { clock });

    // Two customers, each answered beta's placeholder: two skips, one query, one log line.
    for (const customer of ['c_1', 'c_2']) {
      await post(proxy, cardsBody(['beta'], customer));
      await eventually(async () => (await reloadOutcomes(proxy)).skipped === (customer === 'c_1' ? 1 : 2), 5000, `beta skipped for ${customer}`);
    }
    expect(plain.count('configs')).toBe(1);
    expect(plain.count('reload')).toBe(0);
    expect(proxy.logs.lines.filter((l) => String(l.msg).startsWith('card key is not a customer card in Plain'))).toEqual([
      expect.objectContaining({ cardKey: 'beta', level: 40 }),
    ]);

    // A minute on, an operator has added the card in Plain: the next miss reads the configs again.
    plain.configs = [...CONFIGS];
    clock.advance(60_000);
    await post(proxy, cardsBody(['beta'], 'c_3'));
    await plain.waitForReloads(1);
    expect(plain.count('configs')).toBe(2);
    expect(plain.reloads).toEqual([{ customerId: 'c_3', customerCardConfigId: 'cc_beta', threadId: null }]);
    await expectOutcomes(proxy, { ok: 1, error: 0, rate_limited: 0, skipped: 2 });
  });

  it('keeps to maxRequestsPerMinute per process, counting the configs query', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const proxy = await startTestProxy(pushConfig(legacy, plain, {}, { maxRequestsPerMinute: 2 }));

    await Promise.all([
      post(proxy, cardsBody(['alpha', 'beta'], 'c_1', { thread: { id: 'th_1', externalId: null } })),
      post(proxy, cardsBody(['alpha'], 'c_1')),
    ]);
    await eventually(async () => Object.values(await reloadOutcomes(proxy)).reduce((a, b) => a + b) === 3, 5000, 'three push outcomes');
    await settle();
    await expectOutcomes(proxy, { ok: 1, error: 0, rate_limited: 2, skipped: 0 });
    expect(plain.calls.map((c) => c.operation)).toEqual(['configs', 'reload']);
  });

  it('honours a 429 until its x-ratelimit-reset, and retries once when the reset is near', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const proxy = await startTestProxy(pushConfig(legacy, plain));

    // A reset 300 ms away: waited for, then the one retry goes through.
    let limited = 0;
    plain.reply((call) => (call.operation === 'reload' && limited++ === 0 ? rateLimited(Date.now() + 300) : undefined));
    await post(proxy, cardsBody(['alpha'], 'c_1'));
    await plain.waitForReloads(1);
    const [first, second] = plain.calls.filter((c) => c.operation === 'reload');
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(250);
    await expectOutcomes(proxy, { ok: 1, error: 0, rate_limited: 0, skipped: 0 });

    // A reset a minute away: no retry, and no call at all until then.
    plain.reply((call) => (call.operation === 'reload' ? rateLimited(Date.now() + 60_000) : undefined));
    await post(proxy, cardsBody(['alpha'], 'c_2'));
    await eventually(async () => (await reloadOutcomes(proxy)).rate_limited === 1, 5000, 'the 429');
    const callsAfter429 = plain.calls.length;
    plain.reply(undefined);
    await post(proxy, cardsBody(['alpha'], 'c_3'));
    await eventually(async () => (await reloadOutcomes(proxy)).rate_limited === 2, 5000, 'the push held back');
    await settle();
    expect(plain.calls.length).toBe(callsAfter429);
    expect(plain.count('reload')).toBe(3);
    await expectOutcomes(proxy, { ok: 1, error: 0, rate_limited: 2, skipped: 0 });
  });

  it('counts a wrong API key (401) as an error without retrying, and /cards is not affected', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS, apiKey: 'plainApiKey_the-right-one' });
    const proxy = await startTestProxy(pushConfig(legacy, plain));

    const res = await post(proxy, cardsBody(['alpha'], 'c_1'));
    expect(res.status).toBe(200);
    await eventually(async () => (await reloadOutcomes(proxy)).error === 1, 5000, 'the failed push');
    await settle();
    expect(plain.calls.map((c) => c.operation)).toEqual(['configs']);
    const warning = proxy.logs.find('could not push a reload to Plain');
    expect(warning).toEqual([expect.objectContaining({ cardKey: 'alpha', outcome: 'error', detail: "customerCardConfigs: Plain's API answered HTTP 401: Unauthenticated" })]);
    expect(proxy.logs.raw.join('\n')).not.toContain(FAKE_PLAIN_API_KEY);
    // The card itself is served from the cache as usual.
    const warm = await post(proxy, cardsBody(['alpha', 'beta'], 'c_1'));
    expect(textOf(warm.body.cards[0])).toBe('alpha for c_1');
  });

  it('retries a server error once, then counts it as an error', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const proxy = await startTestProxy(pushConfig(legacy, plain));
    plain.reply((call) => (call.operation === 'reload' ? { status: 502, body: { errors: [{ message: 'Bad gateway' }] } } : undefined));

    await post(proxy, cardsBody(['alpha'], 'c_1'));
    await eventually(async () => (await reloadOutcomes(proxy)).error === 1, 5000, 'the failed push');
    await settle();
    expect(plain.calls.map((c) => c.operation)).toEqual(['configs', 'reload', 'reload']);
    expect(proxy.logs.find('could not push a reload to Plain')[0]).toMatchObject({ detail: "Plain's API answered HTTP 502: Bad gateway" });
  });

  it('follows plain.api across a configuration reload: a new key is used at once, null turns pushing off', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const wrongKey = pushConfig(legacy, plain, {}, { apiKey: 'plainApiKey_revoked' });
    const proxy = await startTestProxy(wrongKey);
    await post(proxy, cardsBody(['alpha'], 'c_1'));
    await expectOutcomes(proxy, { ok: 0, error: 1, rate_limited: 0, skipped: 0 });

    const rotated = { ...wrongKey, plain: { ...wrongKey.plain, api: { ...wrongKey.plain.api!, apiKey: FAKE_PLAIN_API_KEY } } };
    expect((await proxy.reload(() => rotated)).config).toBe('reloaded');
    await post(proxy, cardsBody(['alpha'], 'c_2'));
    await plain.waitForReloads(1);
    expect(plain.reloads).toEqual([{ customerId: 'c_2', customerCardConfigId: 'cc_alpha', threadId: null }]);
    await expectOutcomes(proxy, { ok: 1, error: 1, rate_limited: 0, skipped: 0 });

    expect((await proxy.reload(() => ({ ...rotated, plain: { ...rotated.plain, api: null } }))).config).toBe('reloaded');
    const callsBefore = plain.calls.length;
    await post(proxy, cardsBody(['alpha'], 'c_3'));
    await legacy.waitForCalls(3);
    await new Promise((r) => setTimeout(r, SLOW_MS + 300));
    expect(plain.calls.length).toBe(callsBefore);
  });

  it('sends nothing when pushReload is false', async () => {
    const legacy = await slowUpstream();
    const plain = await startFakePlainApi({ configs: CONFIGS });
    const proxy = await startTestProxy(pushConfig(legacy, plain, {}, { pushReload: false }));
    await post(proxy, cardsBody(['alpha'], 'c_1'));
    await legacy.waitForCalls(1);
    await new Promise((r) => setTimeout(r, SLOW_MS + 300));
    expect(plain.calls).toEqual([]);
  });
});
