/**
 * SPEC section 8 against the real thing: known traffic through an in-process cardproxy (real
 * Redis, real BullMQ worker, a real HTTP fake upstream), then the exact counts read back from
 * `/metrics`. Also: the registry is the app's own (not prom-client's global one), Node's default
 * metrics are there, the queue gauge is read at scrape time, and a worker-only process exposes its
 * metrics on `listen.port`.
 */
import { register } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply, textOf, type Reply } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, startTestUpstream, eventually, ManualClock, postCards, startTestProxy, testConfig, type TestProxy } from '../helpers/harness.js';
import { parsePromText, sampleSum, seriesValues, type Sample } from '../helpers/prom-text.js';

const upstream = startTestUpstream;

afterEach(async () => {
  await cleanupProxies();
});

/** One scrape of the app's `/metrics`, through the real route. */
async function scrape(proxy: TestProxy): Promise<Sample[]> {
  const res = await proxy.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  return parsePromText(res.body);
}

/** The refresh-jobs gauge of the `legacy` upstream, by state. */
async function queueGauge(proxy: TestProxy): Promise<Record<string, number>> {
  const samples = await scrape(proxy);
  const out: Record<string, number> = {};
  for (const s of samples.filter((s) => s.name === 'cardproxy_refresh_jobs' && s.labels.upstream === 'legacy')) out[s.labels.state!] = s.value;
  return out;
}

const byKey = (body: { cards: Array<{ key: string }> }) => Object.fromEntries(body.cards.map((c) => [c.key, c])) as Record<string, any>;

/** A gate that holds upstream answers until opened. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('metrics after known traffic (SPEC 8)', () => {
  it('counts every look-up, answer, upstream call, event and request exactly, and reads the queue at scrape time', async () => {
    const slow = gate();
    const legacy = await upstream(async (call): Promise<Reply> => {
      const mine = legacy.calls.filter((c) => c.customerId === call.customerId).length;
      switch (call.customerId) {
        case 'c_404':
          return { status: 404 };
        case 'c_503':
          return mine === 1 ? { status: 503 } : { body: cardsReply(call) };
        case 'c_down':
          return { status: 500 };
        case 'c_bad': // alpha is fine, beta is not a valid card: an integration error for the call
          return {
            body: {
              cards: [
                { key: 'alpha', components: [{ componentText: { text: 'alpha for c_bad' } }] },
                { key: 'beta', components: [{ componentBadge: { badgeLabel: 'x', badgeColor: 'PURPLE' } }] },
              ],
            },
          };
        case 'c_slow1':
        case 'c_slow2':
          await slow.wait;
          return { body: cardsReply(call) };
        default:
          return { body: cardsReply(call) };
      }
    });
    const clock = new ManualClock();
    const config = testConfig(legacy.url, {
      budgetMs: 1000,
      defaults: { ttlSeconds: 10, staleSeconds: 100, integrationErrorTtlSeconds: 120 },
      // Concurrency 1: a held call keeps the next job waiting. One retry, 300 ms later.
      upstreams: { legacy: { url: legacy.url, timeoutMs: 5000, concurrency: 1, retries: 1, retryDelayMs: 300 } },
    });
    const proxy = await startTestProxy(config, 'start', { clock });
    const refreshLines = () => proxy.logs.lines.filter((l) => l.component === 'refresh-worker' && /^refresh job( failed)?$/.test(String(l.msg)));
    const post = async (keys: string[], customer: string) => {
      const res = await postCards(proxy, cardsBody(keys, customer));
      expect(res.status).toBe(200);
      return byKey(res.body);
    };

    // 1. Cold: both keys miss, one upstream call, both refreshed.
    expect(textOf((await post(['alpha', 'beta'], 'c_ok')).alpha)).toBe('alpha for c_ok');
    // 2. Warm: both fresh from the cache.
    await post(['alpha', 'beta'], 'c_ok');
    // 3. Past the TTL, within the stale window: stale now, one background refresh.
    clock.advance(11_000);
    expect((await post(['alpha', 'beta'], 'c_ok')).alpha.timeToLiveSeconds).toBe(15);
    await eventually(() => refreshLines().length === 2, 5000, 'background refresh');
    // 4. A single key answered less than its TTL ago: a manual reload, refreshed.
    await post(['alpha'], 'c_ok');
    // 5. 404: an integration error for both keys; 6. then both negatively cached.
    expect(textOf((await post(['alpha', 'beta'], 'c_404')).beta)).toMatch(/could not be loaded/);
    await post(['alpha', 'beta'], 'c_404');
    expect(legacy.calls.filter((c) => c.customerId === 'c_404')).toHaveLength(1);

    // 7. 503, then the retry succeeds: the job is `delayed` in between, at scrape time.
    const retried = post(['alpha'], 'c_503');
    await legacy.waitForCalls(legacy.calls.length + 1);
    await eventually(async () => (await queueGauge(proxy)).delayed === 1, 2000, 'delayed=1 while the retry waits');
    expect(textOf((await retried).alpha)).toBe('alpha for c_503');

    // 8. One invalid card in a 200 answer: the call is an integration error, alpha still lands.
    const bad = await post(['alpha', 'beta'], 'c_bad');
    expect(textOf(bad.alpha)).toBe('alpha for c_bad');
    expect(textOf(bad.beta)).toMatch(/could not be loaded/);

    // 9. A held upstream: one job active, the next waiting; both requests get the placeholder.
    const slow1 = post(['alpha'], 'c_slow1');
    const slow2 = post(['alpha'], 'c_slow2');
    await eventually(async () => {
      const g = await queueGauge(proxy);
      return g.active === 1 && g.waiting === 1;
    }, 3000, 'active=1 and waiting=1 with the upstream held');
    expect(textOf((await slow1).alpha)).toBe('Loading…');
    expect(textOf((await slow2).alpha)).toBe('Loading…');
    const before = refreshLines().length;
    slow.open();
    await eventually(() => refreshLines().length === before + 2, 5000, 'held jobs to finish');
    await eventually(async () => {
      const g = await queueGauge(proxy);
      return g.active === 0 && g.waiting === 0;
    }, 3000, 'queue to drain');

    // 10. 500 twice: the final failure is recorded and the job counts as failed.
    expect(textOf((await post(['beta'], 'c_down')).beta)).toMatch(/could not be loaded/);
    await eventually(async () => (await queueGauge(proxy)).failed === 2, 3000, 'failed=2 (the 404 job and this one)');

    // 11. Unknown keys are counted, not looked up.
    expect(Object.keys(await post(['alpha', 'nope', 'zzz'], 'c_ok'))).toEqual(['alpha']);
    // 12. Rejected requests are timed under the route pattern too; unmatched URLs never become labels.
    expect((await postCards(proxy, '{')).status).toBe(400);
    expect((await proxy.app.inject({ method: 'GET', url: '/no-such-route/c_secret' })).statusCode).toBe(404);

    const samples = await scrape(proxy);
    expect(seriesValues(samples, 'cardproxy_card_lookups_total', ['card_key', 'result'])).toEqual({
      'alpha miss': 6, // 1, 5, 7, 8, 9 (twice)
      'alpha fresh': 2, // 2, 11
      'alpha stale': 1,
      'alpha reload': 1,
      'alpha negative': 1,
      'beta miss': 4, // 1, 5, 8, 10
      'beta fresh': 1,
      'beta stale': 1,
      'beta negative': 1,
    });
    expect(seriesValues(samples, 'cardproxy_cards_served_total', ['card_key', 'source'])).toEqual({
      'alpha refreshed': 4, // 1, 4, 7, 8
      'alpha cache': 2,
      'alpha stale': 1,
      'alpha error': 2, // 5, 6
      'alpha placeholder': 2,
      'beta refreshed': 1,
      'beta cache': 1,
      'beta stale': 1,
      'beta error': 4, // 5, 6, 8, 10
    });
    expect(seriesValues(samples, 'cardproxy_upstream_request_duration_seconds_count', ['upstream', 'outcome'])).toEqual({
      'legacy ok': 6, // 1, 3, 4, 7 (retry), 9 (twice)
      'legacy retriable_error': 3, // 7, 10 (twice)
      'legacy integration_error': 2, // 5, 8
    });
    expect(sampleSum(samples, 'cardproxy_upstream_request_duration_seconds_bucket', { le: '+Inf' })).toBe(11);
    expect(seriesValues(samples, 'cardproxy_budget_exhausted_total', ['card_key'])).toEqual({ alpha: 2 });
    expect(sampleSum(samples, 'cardproxy_unknown_card_keys_total')).toBe(2);
    expect(seriesValues(samples, 'cardproxy_events_appended_total', ['type'])).toEqual({
      'card.refreshed': 9, // 1 (2), 3 (2), 4, 7, 8, 9 (2)
      'card.refresh_failed': 4, // 5 (2), 8, 10
    });
    expect(seriesValues(samples, 'cardproxy_http_request_duration_seconds_count', ['method', 'route', 'status_code'], { route: '/cards' })).toEqual({
      'POST /cards 200': 12,
      'POST /cards 400': 1,
    });
    const routes = new Set(samples.filter((s) => s.name.startsWith('cardproxy_http_request_duration_seconds')).map((s) => s.labels.route));
    expect([...routes].filter((r) => r !== '/cards' && r !== '/metrics')).toHaveLength(1); // the 404's fixed label
    expect([...routes].some((r) => r?.includes('c_secret'))).toBe(false);
    expect(await queueGauge(proxy)).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 2 });
  });
});

describe('the registry', () => {
  it("is the app's own: prom-client's global registry holds no cardproxy metric, and Node's default metrics are exposed", async () => {
    const legacy = await upstream();
    const a = await startTestProxy(testConfig(legacy.url));
    const b = await startTestProxy(testConfig(legacy.url));
    expect((await postCards(a, cardsBody(['alpha'], 'c_reg'))).status).toBe(200);

    expect(register.getMetricsAsArray().filter((m) => m.name.startsWith('cardproxy'))).toEqual([]);
    expect(await register.metrics()).not.toContain('cardproxy_');
    expect(a.metrics.registry).not.toBe(register);
    expect(a.metrics.registry).not.toBe(b.metrics.registry);

    // Two processes' worth of metrics in one Node process: each counts only its own traffic.
    expect(sampleSum(await scrape(a), 'cardproxy_card_lookups_total')).toBe(1);
    expect(sampleSum(await scrape(b), 'cardproxy_card_lookups_total')).toBe(0);

    const samples = await scrape(a);
    const names = new Set(samples.map((s) => s.name));
    for (const name of [
      'cardproxy_process_cpu_seconds_total',
      'cardproxy_process_resident_memory_bytes',
      'cardproxy_nodejs_heap_size_used_bytes',
      'cardproxy_nodejs_heap_size_total_bytes',
      'cardproxy_nodejs_eventloop_lag_seconds',
      'cardproxy_nodejs_eventloop_lag_p99_seconds',
      'cardproxy_nodejs_version_info',
    ]) {
      expect(names, name).toContain(name);
    }
    // A bucket boundary exactly on budgetMs (1000 ms in testConfig).
    expect(samples.some((s) => s.name === 'cardproxy_http_request_duration_seconds_bucket' && s.labels.le === '1')).toBe(true);
  });
});

describe('a worker-only process (SPEC 4, 8)', () => {
  it('exposes its metrics on listen.port, including the upstream call of a job a serve process enqueued', async () => {
    const legacy = await upstream();
    const config = testConfig(legacy.url, { budgetMs: 3000 });
    const server = await startTestProxy(config, 'serve');
    const worker = await startTestProxy(config, 'worker', { listen: true });
    expect(worker.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const workerScrape = async () => {
      const res = await fetch(`${worker.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      return parsePromText(await res.text());
    };

    const res = await postCards(server, cardsBody(['alpha', 'beta'], 'c_split'));
    expect(textOf(byKey(res.body).alpha)).toBe('alpha for c_split');
    expect(legacy.calls).toHaveLength(1);

    // The event is appended just before the job is reported done, and the job leaves `active`
    // just after: poll briefly for both.
    let samples: Sample[] = [];
    await eventually(async () => {
      samples = await workerScrape();
      return sampleSum(samples, 'cardproxy_events_appended_total') === 2 && sampleSum(samples, 'cardproxy_refresh_jobs') === 0;
    }, 3000, 'events on the worker and its job done');
    expect(seriesValues(samples, 'cardproxy_upstream_request_duration_seconds_count', ['upstream', 'outcome'])).toEqual({ 'legacy ok': 1 });
    expect(seriesValues(samples, 'cardproxy_events_appended_total', ['type'])).toEqual({ 'card.refreshed': 2 });
    expect(seriesValues(samples, 'cardproxy_refresh_jobs', ['upstream', 'state'])).toEqual({}); // all states present, all 0
    expect(samples.filter((s) => s.name === 'cardproxy_refresh_jobs').map((s) => s.labels.state).sort()).toEqual(['active', 'delayed', 'failed', 'waiting']);
    expect(samples.some((s) => s.name === 'cardproxy_process_cpu_seconds_total')).toBe(true);
    // The worker answered no card; the server called no upstream.
    expect(sampleSum(samples, 'cardproxy_cards_served_total')).toBe(0);
    const served = await scrape(server);
    expect(seriesValues(served, 'cardproxy_cards_served_total', ['card_key', 'source'])).toEqual({ 'alpha refreshed': 1, 'beta refreshed': 1 });
    expect(sampleSum(served, 'cardproxy_upstream_request_duration_seconds_count')).toBe(0);
    expect(sampleSum(served, 'cardproxy_events_appended_total')).toBe(0);
  });
});
