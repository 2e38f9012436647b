/**
 * SPEC section 5 against the real thing: real Redis, real BullMQ worker, a real HTTP upstream.
 * Time that matters to the policy is a manual clock; waiting for background work polls with a
 * deadline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, startTestUpstream, eventually, ManualClock, postCards, redisModes, startTestProxy, testConfig } from '../helpers/harness.js';

const upstream = startTestUpstream;

afterEach(async () => {
  await cleanupProxies();
});

const byKey = (body: { cards: Array<{ key: string }> }) => Object.fromEntries(body.cards.map((c) => [c.key, c])) as Record<string, any>;

describe.each(redisModes())('on a %s Redis', (mode) => {
  const configFor = (upstreamUrl: string, overrides: Record<string, unknown> = {}) => testConfig(upstreamUrl, overrides, mode);

  describe('cold, warm and stale cards', () => {
    it('waits for a cold card within the budget, then serves it from the cache without calling the upstream', async () => {
      const legacy = await upstream();
      const clock = new ManualClock();
      const proxy = await startTestProxy(configFor(legacy.url, { defaults: { ttlSeconds: 60 } }), 'start', { clock });

      const first = await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(first.status).toBe(200);
      const cards = byKey(first.body);
      expect(textOf(cards.alpha)).toBe('alpha for c_1');
      expect(cards.alpha.timeToLiveSeconds).toBe(48); // 60 less the refresh-ahead lead (0.2 × 60)
      expect(legacy.calls).toHaveLength(1);
      expect(legacy.calls[0]!.keys.sort()).toEqual(['alpha', 'beta']);

      clock.advance(20_500);
      const warm = await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(byKey(warm.body).alpha.timeToLiveSeconds).toBe(28); // 27.5 s to the lead (at 48 s), rounded up
      expect(textOf(byKey(warm.body).beta)).toBe('beta for c_1');
      expect(legacy.calls).toHaveLength(1);
    });

    it('waits for 25 cold cards at once without a process warning (every card listens to the request budget)', async () => {
      const legacy = await upstream();
      const keys = Array.from({ length: 25 }, (_, i) => `card_${i}`);
      const cards = Object.fromEntries(keys.map((key) => [key, { upstream: 'legacy' }]));
      const proxy = await startTestProxy(configFor(legacy.url, { budgetMs: 5000, cards }));
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      try {
        const cold = await postCards(proxy, cardsBody(keys));
        expect(cold.status).toBe(200);
        expect(cold.body.cards.map((c: { key: string }) => c.key)).toEqual(keys);
        expect(keys.map((key) => textOf(byKey(cold.body)[key]))).toEqual(keys.map((key) => `${key} for c_1`));
        // Node emits warnings on the next tick.
        await new Promise((resolve) => setImmediate(resolve));
      } finally {
        process.off('warning', onWarning);
      }
      expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
    });

    it('serves the placeholder when the refresh outlasts the budget, and the real card on the next load', async () => {
      // The refresh takes ten times the budget, so a loaded machine cannot blur the two apart; the
      // upstream time-out and the job lock are far longer than the refresh, so that a moment of a
      // blocked event loop cannot retry it or make BullMQ run it again (a second upstream call).
      const legacy = await upstream((call) => ({ body: cardsReply(call), delayMs: 3000 }));
      const config = configFor(legacy.url, {
        budgetMs: 300,
        upstreams: { legacy: { url: legacy.url, timeoutMs: 30_000, concurrency: 4, retryDelayMs: 200 } },
        worker: { lockDurationMs: 30_000, stalledIntervalMs: 1000 },
        cards: {
          alpha: { upstream: 'legacy', placeholderTtlSeconds: 7, placeholder: [{ componentText: { text: 'Loading alpha' } }] },
          beta: { upstream: 'legacy' },
        },
      });
      const proxy = await startTestProxy(config);

      const cold = await postCards(proxy, cardsBody(['alpha', 'beta']));
      // Answered at the budget, not when the 3 s refresh lands (generous margin: two loaded cores).
      expect(cold.ms).toBeLessThan(2000);
      expect(byKey(cold.body).alpha).toEqual({ key: 'alpha', timeToLiveSeconds: 7, components: [{ componentText: { text: 'Loading alpha' } }] });
      expect(textOf(byKey(cold.body).beta)).toBe('Loading…');

      await eventually(async () => textOf(byKey((await postCards(proxy, cardsBody(['alpha', 'beta']))).body).alpha) === 'alpha for c_1', 10_000, 'card to land');
      expect(legacy.calls, JSON.stringify(proxy.logs.lines.filter((l) => Number(l.level) >= 40))).toHaveLength(1);
      const exhausted = await proxy.metrics.budgetExhausted.get();
      // The first request and every poll that came before the card landed ran out of budget.
      expect(exhausted.values.find((v) => v.labels.card_key === 'alpha')?.value).toBeGreaterThanOrEqual(1);
    });

    it('serves a stale card at once with staleServeTtlSeconds and refreshes it once in the background', async () => {
      let version = 1;
      const legacy = await upstream((call) => ({ body: cardsReply(call, { text: (key) => `${key} v${version}` }) }));
      const clock = new ManualClock();
      const config = configFor(legacy.url, { defaults: { ttlSeconds: 10, staleSeconds: 100, staleServeTtlSeconds: 3 } });
      const proxy = await startTestProxy(config, 'start', { clock });
      await postCards(proxy, cardsBody(['alpha', 'beta']));
      version = 2;

      clock.advance(11_000);
      const stale = await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(byKey(stale.body).alpha).toMatchObject({ timeToLiveSeconds: 3 });
      expect(textOf(byKey(stale.body).alpha)).toBe('alpha v1');
      await postCards(proxy, cardsBody(['alpha', 'beta'])); // still stale while the refresh runs: no second call

      await eventually(async () => textOf(byKey((await postCards(proxy, cardsBody(['alpha', 'beta']))).body).alpha) === 'alpha v2', 5000, 'refresh');
      expect(legacy.calls).toHaveLength(2);
      const lookups = await proxy.metrics.cardLookups.get();
      expect(lookups.values.find((v) => v.labels.card_key === 'alpha' && v.labels.result === 'stale')?.value).toBeGreaterThanOrEqual(1);
    });

    it('treats a card older than its stale window as missing: the request waits for the refresh', async () => {
      let version = 1;
      const legacy = await upstream((call) => ({ body: cardsReply(call, { text: (key) => `${key} v${version}` }) }));
      const clock = new ManualClock();
      const proxy = await startTestProxy(configFor(legacy.url, { defaults: { ttlSeconds: 10, staleSeconds: 5 } }), 'start', { clock });
      await postCards(proxy, cardsBody(['alpha', 'beta']));
      version = 2;
      clock.advance(16_000);
      const res = await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(textOf(byKey(res.body).alpha)).toBe('alpha v2');
      expect(byKey(res.body).alpha.timeToLiveSeconds).toBe(8); // 10 less the refresh-ahead lead
    });

    it('answers no card for an unknown key and counts it', async () => {
      const legacy = await upstream();
      const proxy = await startTestProxy(configFor(legacy.url));
      const res = await postCards(proxy, cardsBody(['alpha', 'nope']));
      expect(res.body.cards.map((c: { key: string }) => c.key)).toEqual(['alpha']);
      expect((await proxy.metrics.unknownCardKeys.get()).values[0]?.value).toBe(1);
      expect(legacy.calls[0]!.keys).toEqual(['alpha']);
    });
  });

  describe('TTL precedence', () => {
    it('uses the operator override, else the upstream TTL, else the card TTL', async () => {
      const legacy = await upstream((call) => ({
        body: { cards: call.keys.map((key) => ({ key, timeToLiveSeconds: key === 'alpha' ? 42 : null, components: null })) },
      }));
      const clock = new ManualClock();
      const config = configFor(legacy.url, {
        defaults: { refreshAhead: 0 }, // so that timeToLiveSeconds shows the effective TTL itself
        cards: { alpha: { upstream: 'legacy', ttlSeconds: 100 }, beta: { upstream: 'legacy', ttlSeconds: 200 } },
      });
      const proxy = await startTestProxy(config, 'start', { clock });
      const first = byKey((await postCards(proxy, cardsBody(['alpha', 'beta']))).body);
      expect(first.alpha.timeToLiveSeconds).toBe(42);
      expect(first.beta.timeToLiveSeconds).toBe(200);
      expect(first.alpha.components).toBeNull();

      await proxy.store.applyOverrideEvent({ type: 'ttl.override_set', data: { cardKey: 'alpha', ttlSeconds: 7 } });
      // Applies to cards loaded after it: the cached one keeps its TTL until it is reloaded.
      expect(byKey((await postCards(proxy, cardsBody(['alpha', 'beta']))).body).alpha.timeToLiveSeconds).toBe(42);
      clock.advance(43_000);
      await postCards(proxy, cardsBody(['alpha', 'beta'])); // stale: refresh in the background
      await eventually(async () => byKey((await postCards(proxy, cardsBody(['alpha', 'beta']))).body).alpha.timeToLiveSeconds === 7, 5000, 'override');
    });
  });

  describe('single-flight and batching', () => {
    it('makes exactly one upstream call for 50 concurrent cold requests', async () => {
      const legacy = await upstream((call) => ({ body: cardsReply(call), delayMs: 200 }));
      const proxy = await startTestProxy(configFor(legacy.url, { budgetMs: 3000 }));
      const answers = await Promise.all(Array.from({ length: 50 }, () => postCards(proxy, cardsBody(['alpha', 'beta'], 'c_storm'))));
      expect(answers.every((a) => a.status === 200 && textOf(byKey(a.body).alpha) === 'alpha for c_storm')).toBe(true);
      expect(legacy.calls).toHaveLength(1);
    });

    it('keeps single-flight across two server processes and a separate worker', async () => {
      const legacy = await upstream((call) => ({ body: cardsReply(call), delayMs: 300 }));
      const config = configFor(legacy.url, { budgetMs: 3000 });
      const [a, b] = [await startTestProxy(config, 'serve'), await startTestProxy(config, 'serve')];
      await startTestProxy(config, 'worker');
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => postCards(i % 2 ? a : b, cardsBody(['alpha', 'beta'], 'c_two'))),
      );
      expect(answers.every((r) => textOf(byKey(r.body).beta) === 'beta for c_two')).toBe(true);
      expect(legacy.calls).toHaveLength(1);
    });

    it('batches keys of upstreams that are the same API by Plain’s rule, and splits the others', async () => {
      const legacy = await upstream();
      const config = configFor(legacy.url, {
        upstreams: {
          one: { url: legacy.url, headers: { Authorization: 'Bearer x' } },
          same: { url: `  ${legacy.url} `, headers: { ' AUTHORIZATION ': 'Bearer x' } },
          other: { url: legacy.url, headers: { Authorization: 'bearer x' } },
        },
        cards: { alpha: { upstream: 'one' }, beta: { upstream: 'same' }, gamma: { upstream: 'other' } },
      });
      const proxy = await startTestProxy(config);
      const res = await postCards(proxy, cardsBody(['alpha', 'beta', 'gamma']));
      expect(res.body.cards).toHaveLength(3);
      const batches = legacy.calls.map((c) => c.keys.sort().join(',')).sort();
      expect(batches).toEqual(['alpha,beta', 'gamma']);
      const call = legacy.calls.find((c) => c.keys.includes('gamma'))!;
      expect(call.headers.authorization).toBe('bearer x');
      expect(call.headers['plain-workspace-id']).toBe('w_test');
      expect(call.headers['user-agent']).toMatch(/^cardproxy\/\d+\.\d+\.\d+/);
    });

    it('caches customer-scope cards across threads and thread-scope cards per thread', async () => {
      const legacy = await upstream();
      const config = configFor(legacy.url, { cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy', scope: 'thread' } } });
      const proxy = await startTestProxy(config);
      await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_1', { thread: { id: 'th_1', externalId: null } }));
      await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_1', { thread: { id: 'th_2', externalId: null } }));
      expect(legacy.calls.map((c) => c.keys.sort().join(','))).toEqual(['alpha,beta', 'beta']);
      expect(legacy.calls[1]!.body.thread).toEqual({ id: 'th_2', externalId: null });
    });
  });

  describe('upstream failures', () => {
    it('retries a 503 once after retryDelayMs and serves the result', async () => {
      let n = 0;
      const legacy = await upstream((call) => (++n === 1 ? { status: 503 } : { body: cardsReply(call) }));
      const proxy = await startTestProxy(configFor(legacy.url, { budgetMs: 3000 }));
      const res = await postCards(proxy, cardsBody(['alpha']));
      expect(textOf(res.body.cards[0])).toBe('alpha for c_1');
      expect(legacy.calls).toHaveLength(2);
      expect(legacy.calls[1]!.at - legacy.calls[0]!.at).toBeGreaterThanOrEqual(180);
    });

    it('gives up after the retry: error components with placeholderTtlSeconds, and nothing negatively cached', async () => {
      const legacy = await upstream(() => ({ status: 500 }));
      const config = configFor(legacy.url, { budgetMs: 3000, defaults: { placeholderTtlSeconds: 9 } });
      const proxy = await startTestProxy(config);
      const res = await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(byKey(res.body).alpha.timeToLiveSeconds).toBe(9);
      expect(textOf(byKey(res.body).alpha)).toMatch(/could not be loaded/);
      expect(legacy.calls).toHaveLength(2);
      await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(legacy.calls.length).toBeGreaterThan(2); // retriable errors are not cached
    });

    it('does not retry a 404, caches the integration error, and calls again on a manual reload', async () => {
      const legacy = await upstream(() => ({ status: 404 }));
      const config = configFor(legacy.url, { budgetMs: 3000, defaults: { integrationErrorTtlSeconds: 120 } });
      const proxy = await startTestProxy(config);
      const first = await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(byKey(first.body).alpha.timeToLiveSeconds).toBe(120);
      expect(legacy.calls).toHaveLength(1);

      const again = await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(textOf(byKey(again.body).beta)).toMatch(/could not be loaded/);
      expect(legacy.calls).toHaveLength(1);
      const negative = (await proxy.metrics.cardLookups.get()).values.find((v) => v.labels.result === 'negative' && v.labels.card_key === 'beta');
      expect(negative?.value).toBe(1);

      legacy.setHandler((call) => ({ body: cardsReply(call) }));
      const reload = await postCards(proxy, cardsBody(['beta']));
      expect(textOf(reload.body.cards[0])).toBe('beta for c_1');
      expect(legacy.calls).toHaveLength(2);
    });

    it('fails only the key that is missing or invalid, and never passes an invalid card to Plain', async () => {
      const legacy = await upstream(() => ({
        body: {
          cards: [
            { key: 'alpha', components: [{ componentBadge: { badgeLabel: 'x', badgeColor: 'PURPLE' } }] },
            { key: 'gamma', components: [{ componentText: { text: 'extra card, ignored' } }] },
          ],
        },
      }));
      const config = configFor(legacy.url, { cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy' }, gamma: { upstream: 'legacy' } } });
      const proxy = await startTestProxy(config);
      const res = byKey((await postCards(proxy, cardsBody(['alpha', 'beta']))).body);
      expect(textOf(res.alpha)).toMatch(/could not be loaded/);
      expect(textOf(res.beta)).toMatch(/could not be loaded/);
      expect(JSON.stringify(res)).not.toContain('PURPLE');
      expect(res.alpha.timeToLiveSeconds).toBe(300);
    });

    it('drops unknown fields inside components before they reach Plain', async () => {
      const legacy = await upstream((call) => ({
        body: { cards: call.keys.map((key) => ({ key, components: [{ componentText: { text: 'hi', secretField: 'leak' } }] })) },
      }));
      // A budget no loaded machine runs out of: the card must arrive in this answer (once 1 s was not enough).
      const proxy = await startTestProxy(configFor(legacy.url, { budgetMs: 10_000 }));
      const res = await postCards(proxy, cardsBody(['alpha']));
      expect(res.body.cards[0].components).toEqual([{ componentText: { text: 'hi' } }]);
    });

    it('serves a stale copy of any age when the refresh fails (stale-if-error)', async () => {
      let fail = false;
      const legacy = await upstream((call) => (fail ? { status: 400 } : { body: cardsReply(call) }));
      const clock = new ManualClock();
      const config = configFor(legacy.url, { budgetMs: 2000, defaults: { ttlSeconds: 10, staleSeconds: 10, staleServeTtlSeconds: 4 } });
      const proxy = await startTestProxy(config, 'start', { clock });
      await postCards(proxy, cardsBody(['alpha', 'beta']));
      fail = true;
      clock.advance(60_000); // far beyond the stale window, but the copy is still held
      const res = byKey((await postCards(proxy, cardsBody(['alpha', 'beta']))).body);
      expect(textOf(res.alpha)).toBe('alpha for c_1');
      expect(res.alpha.timeToLiveSeconds).toBe(4);
      const served = (await proxy.metrics.cardsServed.get()).values.find((v) => v.labels.card_key === 'alpha' && v.labels.source === 'stale');
      expect(served?.value).toBe(1);
    });
  });

  describe('manual reload', () => {
    it('forces a refresh for a single-key request within the TTL it was given, but not in another thread', async () => {
      let version = 1;
      const legacy = await upstream((call) => ({ body: cardsReply(call, { text: (key) => `${key} v${version}` }) }));
      const proxy = await startTestProxy(configFor(legacy.url, { budgetMs: 2000 }));
      const inThread = (t: string) => ({ thread: { id: t, externalId: null } });
      await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_1', inThread('th_1')));
      await new Promise((r) => setTimeout(r, 50)); // the served markers are written after the answer
      // Another thread: Plain has no copy there, so this is a normal (warm) load.
      expect(textOf((await postCards(proxy, cardsBody(['alpha'], 'c_1', inThread('th_2')))).body.cards[0])).toBe('alpha v1');
      expect(legacy.calls).toHaveLength(1);

      version = 2;
      const reload = await postCards(proxy, cardsBody(['alpha'], 'c_1', inThread('th_1')));
      expect(textOf(reload.body.cards[0])).toBe('alpha v2');
      expect(legacy.calls).toHaveLength(2);
      expect(legacy.calls[1]!.keys).toEqual(['alpha']);
      const reloads = (await proxy.metrics.cardLookups.get()).values.find((v) => v.labels.result === 'reload');
      expect(reloads?.value).toBe(1);
    });
  });
});
