#!/usr/bin/env node
/**
 * `node bench/reliability.mjs hang|storm [--scale F]` (after `npm run build`)
 *
 * The reliability scenarios of issue 8, run again with real processes (`serve` and `worker` from
 * dist/, a real Redis, a counting slow upstream on node:http, autocannon load in a child process):
 *
 * - `hang`: a private `redis-server` (started here, on a free port) is frozen with SIGSTOP for 10 s
 *   under 200 req/s (160 for warm customers on `card-01`, 40 for new ones on `card-02`), upstream
 *   3 s, concurrency 4. Reports the direct upstream calls of `serve` (its upstream path is
 *   `/serve`, the worker's `/worker`) started after Redis came back, the most calls the upstream
 *   had in flight, answers later than the budget, and warm customers answered with placeholders.
 * - `storm`: `20000 × scale` new customers in 60 s on the shared Redis (upstream 3 s,
 *   concurrency 4, default budget and `refresh.maxQueued` unless `--max-queued`), then one new
 *   customer who looks every second (as an agent would): how long until a look shows data, and
 *   `cardproxy_refresh_dropped_total`.
 *
 * Every process started here is stopped by pid; the storm's keys are deleted after it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WORKSPACE_ID, makeConfig, postCards, scrapeMetrics, startProcess, stopAll, sumBy, writeConfig } from './lib/cardproxy.mjs';
import { countExisting, keyLayout } from './lib/env.mjs';
import { killLoads, runLoad } from './lib/load.mjs';
import { REDIS_URL, assertLocalRedis, connect, deletePrefix, uniquePrefix } from './lib/redis.mjs';
import { HOST, freePort, sleep, waitFor } from './lib/util.mjs';

const { values, positionals } = parseArgs({
  options: { scale: { type: 'string', default: '1' }, 'max-queued': { type: 'string' } },
  allowPositionals: true,
});
const scenario = positionals[0];
if (scenario !== 'hang' && scenario !== 'storm') throw new Error('usage: node bench/reliability.mjs hang|storm [--scale F] [--max-queued N]');

const UPSTREAM_MS = 3000;
const CONCURRENCY = 4;
const BUDGET_MS = 10_000;

/** A legacy API answering every call after UPSTREAM_MS; records when each call arrived, on which path. */
async function slowUpstream() {
  const calls = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      calls.push({ at: Date.now(), path: req.url, customerId: body.customer.id });
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        inFlight--;
      };
      res.once('close', finish);
      setTimeout(() => {
        finish();
        if (res.destroyed) return;
        const cards = body.cardKeys.map((key) => ({ key, timeToLiveSeconds: null, components: [{ componentText: { text: `${key} for ${body.customer.id}` } }] }));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ cards }));
      }, UPSTREAM_MS);
    });
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, HOST, resolve));
  return {
    url: `http://${HOST}:${port}`,
    calls,
    get maxInFlight() {
      return maxInFlight;
    },
    get inFlight() {
      return inFlight;
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

/** One redis-server of our own (no persistence), so it can be frozen without touching anyone else's. */
async function privateRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cardproxy-rel-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const url = `redis://${HOST}:${port}`;
  const redis = connect(url);
  await waitFor(async () => (await redis.ping().catch(() => '')) === 'PONG', { timeoutMs: 10_000, what: 'the private redis-server' });
  redis.disconnect();
  return {
    url,
    freeze: () => child.kill('SIGSTOP'),
    thaw: () => child.kill('SIGCONT'),
    stop() {
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A `serve` and a `worker` on their own upstream paths, default worker settings. */
async function startPair({ dir, prefix, redisUrl, upstream, configExtra = {} }) {
  const base = { ...makeConfig({ prefix, upstreamUrl: upstream.url, budgetMs: BUDGET_MS, concurrency: CONCURRENCY, cards: ['card-01', 'card-02'], timeoutMs: 30_000 }), ...configExtra };
  delete base.worker; // the defaults under test
  const forPath = (path) => ({ ...base, redis: { ...base.redis, url: redisUrl }, upstreams: { legacy: { ...base.upstreams.legacy, url: `${upstream.url}${path}` } } });
  const env = { REDIS_URL: redisUrl };
  const serve = await startProcess({ role: 'serve', configPath: writeConfig(dir, 'serve', forPath('/serve')), dir, env });
  const worker = await startProcess({ role: 'worker', configPath: writeConfig(dir, 'worker', forPath('/worker')), dir, env });
  return { serve, worker };
}

const count = (metrics, name, label, value) => sumBy(metrics, name, label)[value] ?? 0;

async function hang(dir) {
  const upstream = await slowUpstream();
  const redis = await privateRedis();
  try {
    const prefix = uniquePrefix('rel-hang');
    const { serve } = await startPair({ dir, prefix, redisUrl: redis.url, upstream });
    // 100 warm customers on card-01.
    const warm = Array.from({ length: 100 }, (_, i) => `warm-${i}`);
    await Promise.all(warm.map((customerId) => postCards(serve.url, { customerId, keys: ['card-01'] })));
    const keys = keyLayout(prefix);
    const check = connect(redis.url);
    const cardKeysInRedis = warm.map((customerId) => keys.card({ workspaceId: WORKSPACE_ID, customerId, threadId: null, cardKey: 'card-01' }));
    await waitFor(async () => (await countExisting(check, cardKeysInRedis)) === warm.length, { timeoutMs: 180_000, everyMs: 1000, what: 'the warm customers to be cached' });
    check.disconnect();
    const before = await scrapeMetrics(serve.url, ['cardproxy_cards_served_total', 'cardproxy_cards_over_budget_total']);
    const loadStart = Date.now();
    const loads = Promise.all([
      // A new thread per request: a single-key request repeated in one thread would be a manual reload.
      runLoad({ url: `${serve.url}/cards`, connections: 100, duration: 40, overallRate: 160, keys: ['card-01'], customers: { prefix: 'warm-', count: 100, offset: 0 }, threads: { prefix: 'th-' }, timeout: 15 }),
      runLoad({ url: `${serve.url}/cards`, connections: 500, duration: 40, overallRate: 40, keys: ['card-02'], customers: { prefix: 'cold-', offset: 0 }, timeout: 15 }),
    ]);
    await sleep(10_000);
    const frozenAt = Date.now();
    redis.freeze();
    await sleep(10_000);
    redis.thaw();
    const backAt = Date.now();
    const [warmLoad, coldLoad] = await loads;
    await sleep(5000); // anything still running after the load is over shows here
    const after = await scrapeMetrics(serve.url, ['cardproxy_cards_served_total', 'cardproxy_cards_over_budget_total']);
    const direct = upstream.calls.filter((c) => c.path === '/serve');
    const directAfter = (ms) => direct.filter((c) => c.at > backAt + ms).length;
    const served = (source) => count(after, 'cardproxy_cards_served_total', 'source', source) - count(before, 'cardproxy_cards_served_total', 'source', source);
    const warmPlaceholders = Object.entries(after)
      .filter(([series]) => series.startsWith('cardproxy_cards_served_total{') && series.includes('card_key="card-01"') && series.includes('source="placeholder"'))
      .reduce((n, [series, v]) => n + v - (before[series] ?? 0), 0);
    return {
      'Redis back at (epoch ms)': backAt,
      'direct calls after Redis came back (ms after: customer)': direct.filter((c) => c.at > backAt).map((c) => `${c.at - backAt}: ${c.customerId}`).join(', '),
      'load started -> Redis frozen (s)': ((frozenAt - loadStart) / 1000).toFixed(1),
      'Redis frozen (s)': ((backAt - frozenAt) / 1000).toFixed(1),
      'requests (warm / new)': `${warmLoad.total} / ${coldLoad.total}`,
      'client p99 / max ms (warm)': `${Math.round(warmLoad.latency.p99)} / ${Math.round(warmLoad.latency.max)}`,
      'client p99 / max ms (new)': `${Math.round(coldLoad.latency.p99)} / ${Math.round(coldLoad.latency.max)}`,
      'errors / timeouts / non-2xx': `${warmLoad.errors + coldLoad.errors} / ${warmLoad.timeouts + coldLoad.timeouts} / ${warmLoad.non2xx + coldLoad.non2xx}`,
      'answers over budget (server)': (after.cardproxy_cards_over_budget_total ?? 0) - (before.cardproxy_cards_over_budget_total ?? 0),
      'direct calls during the freeze': direct.filter((c) => c.at >= frozenAt && c.at <= backAt).length,
      'direct calls started after Redis came back (any / >1 s / >5 s after)': `${directAfter(0)} / ${directAfter(1000)} / ${directAfter(5000)}`,
      'last direct call started, s after Redis came back': direct.length ? ((Math.max(...direct.map((c) => c.at)) - backAt) / 1000).toFixed(2) : 'none',
      'upstream max in flight (limit 4)': upstream.maxInFlight,
      'warm customers answered with placeholders': warmPlaceholders,
      'placeholders (all)': served('placeholder'),
    };
  } finally {
    await stopAll();
    redis.stop();
    await upstream.close();
  }
}

/** Sends `count` requests for new customers at `rate` per second without waiting for answers; then waits for them all. */
async function openLoop({ url, rate, count, prefix }) {
  const startedAt = Date.now();
  const t0 = performance.now();
  const answers = [];
  let failed = 0;
  const pending = [];
  for (let i = 0; i < count; i++) {
    const wait = t0 + (i * 1000) / rate - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(
      postCards(url, { customerId: `${prefix}${i}`, keys: ['card-01'], timeoutMs: 30_000 }).then(
        (a) => answers.push(a),
        () => failed++,
      ),
    );
  }
  const sentMs = performance.now() - t0;
  await Promise.all(pending);
  return { answers, failed, sentMs, startedAt };
}

async function storm(dir, scale, maxQueued) {
  const upstream = await slowUpstream();
  const shared = connect(REDIS_URL);
  const prefix = uniquePrefix('rel-storm');
  const customers = Math.round(20_000 * scale);
  try {
    const { serve } = await startPair({ dir, prefix, redisUrl: REDIS_URL, upstream, configExtra: maxQueued ? { refresh: { maxQueued } } : {} });
    const rate = customers / 60;
    // Open loop, as agents arrive: one new customer every 1/rate s whatever the answers take
    // (a closed-loop generator would slow down as answers take the whole budget).
    const storm = await openLoop({ url: serve.url, rate, count: customers, prefix: 'storm-' });
    const stormEnd = Date.now();
    await sleep(500); // the last answered requests lower their refreshes
    const queued = await scrapeMetrics(serve.url, ['cardproxy_refresh_jobs', 'cardproxy_refresh_dropped_total', 'cardproxy_cards_over_budget_total']);
    // One new customer, looking every second until a look shows data.
    const firstLookAt = Date.now();
    const looks = [];
    for (;;) {
      // Two keys: a repeated single-key look would be a manual reload (SPEC 5.6).
      const look = await postCards(serve.url, { customerId: 'new-after-storm', keys: ['card-01', 'card-02'], timeoutMs: 20_000 });
      const data = look.text.includes('card-01 for new-after-storm');
      looks.push({ ms: Math.round(look.ms), data });
      if (data || Date.now() - firstLookAt > 600_000) break;
      await sleep(1000);
    }
    const dropped = sumBy(queued, 'cardproxy_refresh_dropped_total', 'reason');
    const waiting = sumBy(queued, 'cardproxy_refresh_jobs', 'state');
    const ms = storm.answers.map((a) => a.ms).sort((a, b) => a - b);
    return {
      scale: `${scale}: ${customers} new customers sent in ${(storm.sentMs / 1000).toFixed(1)} s (${rate.toFixed(0)} req/s), all answered ${((stormEnd - storm.startedAt) / 1000).toFixed(1)} s after the first`,
      'storm answers: p99 / max ms, non-200, failed': `${Math.round(ms[Math.ceil(ms.length * 0.99) - 1])} / ${Math.round(ms.at(-1))}, ${storm.answers.filter((a) => a.status !== 200).length}, ${storm.failed}`,
      'storm answers over budget (server)': queued.cardproxy_cards_over_budget_total ?? 0,
      'storm answers with data / placeholders': `${storm.answers.filter((a) => a.text.includes(' for storm-')).length} / ${storm.answers.filter((a) => a.text.includes('Loading')).length}`,
      'refresh jobs after the storm (waiting / active)': `${waiting.waiting ?? 0} / ${waiting.active ?? 0}`,
      'cardproxy_refresh_dropped_total (queue_full / removed)': `${dropped.queue_full ?? 0} / ${dropped.removed ?? 0}`,
      'new customer: first look': `${looks[0].data ? 'data' : 'placeholder'} in ${looks[0].ms} ms`,
      'new customer: data shown after (s from first look)': looks.at(-1).data ? ((Date.now() - firstLookAt) / 1000).toFixed(1) : 'not within 10 min',
      looks: looks.length,
      'upstream calls during the storm / max in flight': `${upstream.calls.filter((c) => c.at <= stormEnd).length} / ${upstream.maxInFlight}`,
    };
  } finally {
    await stopAll();
    await upstream.close();
    await deletePrefix(shared, prefix).catch(() => {});
    shared.disconnect();
  }
}

assertLocalRedis();
const dir = mkdtempSync(join(tmpdir(), 'cardproxy-rel-'));
const stop = async () => {
  killLoads();
  await stopAll();
  process.exit(130);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
try {
  const result = scenario === 'hang' ? await hang(dir) : await storm(dir, Number(values.scale), values['max-queued'] ? Number(values['max-queued']) : undefined);
  for (const [k, v] of Object.entries(result)) process.stdout.write(`${k}: ${v}\n`);
} finally {
  if (process.env.KEEP_LOGS) process.stdout.write(`logs kept in ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
