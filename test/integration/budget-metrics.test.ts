/**
 * The metrics that let dashboards and alerts follow the configured budget: the budget itself, the
 * /cards answers sent later than it (measured by the app's clock from request arrival), and the
 * reserve a waiting request keeps back, which grows when waits end late.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, ManualClock, postCards, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';

afterEach(cleanupProxies);

describe('budget metrics', () => {
  it('exports cardproxy_budget_seconds and counts /cards answers later than the budget', async () => {
    const clock = new ManualClock();
    // The upstream "takes" 5 s of the app's clock: the answer goes out after the 2 s budget.
    const legacy = await startTestUpstream((call) => {
      if (call.customerId === 'c_late') clock.advance(5000);
      return { body: cardsReply(call) };
    });
    const proxy = await startTestProxy(testConfig(legacy.url, { budgetMs: 2000 }), 'start', { clock });
    expect((await proxy.metrics.budget.get()).values[0]?.value).toBe(2);

    expect((await postCards(proxy, cardsBody(['alpha'], 'c_1'))).status).toBe(200);
    expect((await proxy.metrics.cardsOverBudget.get()).values[0]?.value).toBe(0);
    expect((await postCards(proxy, cardsBody(['alpha'], 'c_late'))).status).toBe(200);
    expect((await proxy.metrics.cardsOverBudget.get()).values[0]?.value).toBe(1);
  });

  it('keeps back more of the budget after a wait ended late, and less as that lateness ages', async () => {
    const clock = new ManualClock();
    // Every refresh outlasts the 2 s budget. While c_late waits, the app's clock moves on by the
    // 1.9 s it waits and 600 ms more: by that clock its wait ends 600 ms past its deadline, as
    // when a busy event loop gets round to the timer late.
    const legacy = await startTestUpstream((call) => {
      if (call.customerId === 'c_late') clock.advance(1900 + 600);
      return { delayMs: 3000, body: cardsReply(call) };
    });
    const loading = [{ componentText: { text: 'Loading alpha' } }];
    const config = testConfig(legacy.url, { budgetMs: 2000, cards: { alpha: { upstream: 'legacy', placeholder: loading } } });
    const proxy = await startTestProxy(config, 'start', { clock });
    const reserve = async () => (await proxy.metrics.registry.getSingleMetric('cardproxy_budget_reserve_seconds')!.get()).values[0]?.value;
    expect(await reserve()).toBe(0.1); // 5 % of 2 s

    const late = await postCards(proxy, cardsBody(['alpha'], 'c_late'));
    expect(late.status).toBe(200);
    expect(late.body.cards[0].components).toEqual(loading);
    // 100 ms + 600 ms late is more than a quarter of the budget: 500 ms.
    expect(await reserve()).toBe(0.5);

    // The next waiting request stops at 1.5 s instead of 1.9 s.
    const next = await postCards(proxy, cardsBody(['alpha'], 'c_next'));
    expect(next.status).toBe(200);
    expect(next.body.cards[0].components).toEqual(loading);
    expect(next.ms).toBeGreaterThanOrEqual(1490);
    expect(next.ms).toBeLessThan(1850);

    // 600 ms halves every 5 s: 150 ms after 10 s, so 250 ms kept back; nothing after a minute.
    // (c_late's wait ended a few ms earlier still, by the time the test process was busy before
    // it was read: request-intake.ts; that much later by the app's clock, a quarter of it counts.)
    clock.advance(10_000);
    expect(await reserve()).toBeGreaterThanOrEqual(0.25);
    expect(await reserve()).toBeLessThan(0.28);
    clock.advance(50_000);
    expect(await reserve()).toBe(0.1);
  });
});

