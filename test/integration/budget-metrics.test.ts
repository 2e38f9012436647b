/**
 * The metrics that let dashboards and alerts follow the configured budget: the budget itself, and
 * the /cards answers sent later than it (measured by the app's clock from request arrival).
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
});
