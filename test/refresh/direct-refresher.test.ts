/**
 * The Redis-down fall-back (SPEC 5, last paragraph) against a real HTTP upstream: a call starts
 * only when a waiting request can still use its answer, and stops when nobody waits any more.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CardRef } from '../../src/core/card-ref.js';
import type { UpstreamGroup } from '../../src/config/upstream-groups.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { DirectRefresher, MIN_CALL_TIME_MS } from '../../src/refresh/direct-refresher.js';
import type { RefreshContext } from '../../src/refresh/refresh-scheduler.js';
import { UpstreamSlots } from '../../src/refresh/upstream-slots.js';
import { cardsReply, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';

const SLOW_MS = 400;
let upstreams: FakeUpstream[] = [];

afterEach(async () => {
  await Promise.all(upstreams.map((u) => u.close()));
  upstreams = [];
});

async function setup(concurrency: number) {
  const upstream = await startFakeUpstream((call) => ({ body: cardsReply(call), delayMs: SLOW_MS }));
  upstreams.push(upstream);
  const group: UpstreamGroup = { name: 'legacy', upstreamNames: ['legacy'], url: upstream.url, headers: {}, timeoutMs: 5000, concurrency, retries: 0, retryDelayMs: 0, signingSecret: null };
  const slots = new UpstreamSlots({ maxWaiting: 100 });
  const direct = new DirectRefresher({ slots, metrics: new Metrics({ budgetMs: 1000 }), clock: { now: () => Date.now() }, log: createLogger({ level: 'silent' }) });
  return { upstream, group, direct, slots };
}

const context = (customerId: string): RefreshContext => ({ workspaceId: 'w_1', customer: { id: customerId }, thread: null, tenant: null });
const refOf = (customerId: string): CardRef => ({ workspaceId: 'w_1', customerId, threadId: null, cardKey: 'alpha' });

/** A request's wait that ends at `deadline` (ms from now). */
function waitFor(ms: number) {
  const budget = new AbortController();
  const timer = setTimeout(() => budget.abort(), ms);
  return { wait: { signal: budget.signal, deadline: Date.now() + ms }, done: () => clearTimeout(timer) };
}

describe('direct refresher', () => {
  it('loads a card for a request with time to wait for it', async () => {
    const { upstream, group, direct } = await setup(2);
    const { wait, done } = waitFor(SLOW_MS + 1000);
    const outcome = await direct.load(context('c_ok'), group, [refOf('c_ok')], wait).get('alpha');
    done();
    expect(outcome?.ok).toBe(true);
    expect(upstream.calls.map((c) => c.customerId)).toEqual(['c_ok']);
  });

  it('starts no call for a request that stopped waiting, or whose deadline is too close for an answer', async () => {
    const { upstream, group, direct } = await setup(2);
    const gone = new AbortController();
    gone.abort();
    expect(await direct.load(context('c_gone'), group, [refOf('c_gone')], { signal: gone.signal, deadline: Date.now() + 5000 }).get('alpha')).toBeUndefined();
    const { wait, done } = waitFor(MIN_CALL_TIME_MS / 2);
    expect(await direct.load(context('c_late'), group, [refOf('c_late')], wait).get('alpha')).toBeUndefined();
    done();
    await new Promise((r) => setTimeout(r, 100));
    expect(upstream.calls).toEqual([]);
  });

  it('does not hand a slot freed at one deadline to a request about to reach its own', async () => {
    // Concurrency 1: the first request holds the slot until its budget ends; the second, a few
    // milliseconds behind it, would get the slot with too little time left for any answer.
    const { upstream, group, direct, slots } = await setup(1);
    const first = waitFor(200);
    const second = waitFor(200 + MIN_CALL_TIME_MS / 4);
    const outcomes = [direct.load(context('c_first'), group, [refOf('c_first')], first.wait).get('alpha'), direct.load(context('c_second'), group, [refOf('c_second')], second.wait).get('alpha')];
    expect(await Promise.all(outcomes)).toEqual([undefined, undefined]);
    first.done();
    second.done();
    await new Promise((r) => setTimeout(r, SLOW_MS));
    expect(upstream.calls.map((c) => c.customerId)).toEqual(['c_first']);
    expect(upstream.inFlight).toBe(0);
    expect(slots.usage('legacy')).toEqual({ active: 0, waiting: 0 });
  });
});
