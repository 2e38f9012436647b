/**
 * Refresh-ahead (SPEC 5.2, 10.3) end to end, against real Redis, a real BullMQ worker and a real
 * HTTP upstream, with a client that caches like Plain: it asks again (a single-key request, as
 * Plain does for one card) exactly when the `timeToLiveSeconds` it was given runs out. Time is a
 * manual clock, so an hour of it passes in a second.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, ManualClock, postCards, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';

afterEach(async () => {
  await cleanupProxies();
});

describe('refresh-ahead with a client that caches like Plain', () => {
  it('never serves the watched card stale and shows each new version within staleServeTtlSeconds', async () => {
    let version = 0;
    const legacy = await startTestUpstream((call) => ({ body: cardsReply(call, { text: () => `v${++version}` }) }));
    const clock = new ManualClock();
    const config = testConfig(legacy.url, {
      budgetMs: 5000, // the first (cold) load must land in time on a busy machine
      defaults: { ttlSeconds: 10, refreshAhead: 0.5, staleServeTtlSeconds: 2 },
      cards: { alpha: { upstream: 'legacy' } },
    });
    const proxy = await startTestProxy(config, 'start', { clock });

    const ref = { workspaceId: 'w_test', customerId: 'c_1', threadId: null, cardKey: 'alpha' };
    const inflight = proxy.store.keys.inflight(ref);
    const fetchedAt = async () => (await proxy.store.readStates([ref]))[0]?.data?.fetchedAt ?? null;
    const answers: Array<{ at: number; text: string; ttl: number }> = [];
    const started = clock.now();
    while (clock.now() - started < 60_000) {
      const before = await fetchedAt();
      // Inside the lead (the second half of the 10 s TTL) the request starts a refresh-ahead.
      const inLead = before !== null && clock.now() >= before + 5000;
      const res = await postCards(proxy, cardsBody(['alpha']));
      expect(res.status).toBe(200);
      const card = res.body.cards[0];
      answers.push({ at: clock.now() - started, text: textOf(card), ttl: card.timeToLiveSeconds });
      // A refresh-ahead it started lands before the client asks again (an upstream within the
      // lead). Its enqueue may still be under way when the answer arrives (it can first read the
      // queue's counts), so the wait is for the new version itself, then for its marker to go.
      if (inLead) await eventually(async () => (await fetchedAt()) !== before, 5000, 'the refresh-ahead to land');
      await eventually(async () => (await proxy.redis.exists(inflight)) === 0, 5000, 'the refresh-ahead marker to go');
      clock.advance(card.timeToLiveSeconds * 1000);
    }

    const served = Object.fromEntries((await proxy.metrics.cardsServed.get()).values.map((v) => [v.labels.source, v.value]));
    const lookups = Object.fromEntries((await proxy.metrics.cardLookups.get()).values.map((v) => [v.labels.result, v.value]));
    expect(served.stale ?? 0).toBe(0);
    expect(lookups.reload ?? 0).toBe(0); // asking again when the TTL ran out is not a manual reload
    expect(lookups.stale ?? 0).toBe(0);
    // The card is loaded once and then refreshed ahead of every expiry: 60 s at TTL 10 s.
    expect(version).toBeGreaterThanOrEqual(6);
    // Each new version is shown within staleServeTtlSeconds (2 s) of its landing.
    for (let i = 1; i < answers.length; i++) {
      if (answers[i]!.text !== answers[i - 1]!.text) expect(answers[i - 1]!.ttl).toBeLessThanOrEqual(2);
    }
    const enqueued = await proxy.metrics.refreshesEnqueued.get();
    const ahead = enqueued.values.find((v) => v.labels.trigger === 'ahead')?.value ?? 0;
    expect(ahead).toBe(version - 1);
  });
});
