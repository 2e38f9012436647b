/**
 * Scenario 2, cold storm: many distinct customers, every one cold, upstream at 2 s, budget 1 s.
 * Run twice: one `start` process (server and worker share an event loop), then `serve` plus a
 * separate `worker`. Every answer must come within budgetMs + 50 ms, and once the background
 * refreshes have drained, the upstream must have loaded each distinct card once. The answers' times
 * are the load generator's, and when tcpdump can capture, the server's own on the wire
 * (wire-latency.mjs), which are then judged: the generator shares two CPUs with the server, its
 * worker, Redis and the upstream, and reads some answers late. The server's log says how long each
 * answer took from the moment its listener took the request.
 */
import { readFileSync } from 'node:fs';
import { answeredMsFromLog, cardKeys, logMessageCounts, scrapeMetrics, sumBy } from './lib/cardproxy.mjs';
import { openEnv } from './lib/env.mjs';
import { runLoad } from './lib/load.mjs';
import { whileCapturing } from './lib/wire-latency.mjs';
import { amplification, fmt, percentileSorted, table, target, waitFor } from './lib/util.mjs';

const BUDGET_MS = 1000;
const UPSTREAM_MS = 2000;

async function stormOnce(ctx, layout) {
  const connections = ctx.quick ? 50 : 200;
  const requests = ctx.quick ? 300 : 2000;
  const keys = cardKeys(3);
  const env = await openEnv(ctx, {
    tag: `cold-${layout === "start" ? "start" : "split"}`,
    upstream: { latencyMs: UPSTREAM_MS },
    config: { budgetMs: BUDGET_MS, concurrency: 256, ttlSeconds: 3600 },
    processes: layout === 'start' ? [{ role: 'start' }] : [{ role: 'serve' }, { role: 'worker' }],
  });
  try {
    const proc = env.procs[0];
    const { result: load, wire } = await whileCapturing(
      new URL(proc.url).port,
      undefined,
      () => runLoad({ url: `${proc.url}/cards`, connections, amount: requests, keys, customers: { prefix: `cs-${layout}-`, offset: 0 } }),
      (res) => res.total,
    );
    const expected = load.total * keys.length;
    // Let the background refreshes finish: every requested card loaded, then the upstream quiet.
    const drainStarted = Date.now();
    await waitFor(() => env.upstream.stats().distinct >= expected, { timeoutMs: 180_000, everyMs: 200, what: 'background refreshes' }).catch(() => {});
    await env.upstream.settle({ quietMs: 1500, timeoutMs: 60_000 });
    const drainMs = Date.now() - drainStarted;
    const up = env.upstream.stats();
    const served = sumBy(await scrapeMetrics(proc.url, ['cardproxy_cards_served_total']), 'cardproxy_cards_served_total', 'source');
    const serverMs = answeredMsFromLog(proc.logFile);
    const warnings = Object.assign({}, ...env.procs.map((p) => logMessageCounts(p.logFile)));
    // For a card loaded twice: what the processes logged about its customer's refresh jobs.
    const traces = up.duplicates.slice(0, 2).map((d) => {
      const customer = d.split('/')[0];
      const lines = env.procs.flatMap((p) =>
        readFileSync(p.logFile, 'utf8')
          .split('\n')
          .filter((l) => l.includes(`"customerId":"${customer}"`) && l.includes('refresh job'))
          .map((l) => {
            const e = JSON.parse(l);
            return `${p.name} ${e.time} job ${e.jobId} attempt ${e.attempt} ${e.outcome}`;
          }),
      );
      return `${customer}: ${lines.join('; ') || 'no refresh-job lines'}`;
    });
    return { layout, connections, keys, load, wire, expected, drainMs, up, served, serverMs, warnings, traces };
  } finally {
    await env.close();
  }
}

export async function runColdStorm(ctx) {
  const runs = [];
  for (const layout of ['start', 'serve+worker']) {
    runs.push(await stormOnce(ctx, layout));
    const r = runs.at(-1);
    ctx.log(`  ${layout}: max ${fmt.ms(r.load.latency.max, 1)} ms client-side, ${r.wire ? `${fmt.ms(r.wire.max, 1)} ms on the wire, ` : ''}${r.serverMs.at(-1)} ms server-side`);
  }
  const limit = BUDGET_MS + 50;
  const rows = runs.map((r) => [
    r.layout,
    fmt.int(r.load.total),
    fmt.int(r.expected),
    String(r.connections),
    fmt.int(r.load.statuses['200'] ?? 0),
    fmt.ms(r.load.latency.p50, 0),
    fmt.ms(r.load.latency.p99, 0),
    fmt.ms(r.load.latency.max, 0),
    r.wire ? fmt.ms(r.wire.p99, 0) : '-',
    r.wire ? fmt.ms(r.wire.max, 0) : '-',
    r.wire ? `${fmt.ms(r.wire.firstMax, 0)} / ${fmt.ms(r.wire.laterMax, 0)}` : '-',
    fmt.ms(percentileSorted(r.serverMs, 99), 0),
    fmt.ms(r.serverMs.at(-1), 0),
    Object.entries(r.served).map(([k, v]) => `${k} ${fmt.int(v)}`).join(', '),
    fmt.int(r.up.calls),
    fmt.int(r.up.loads),
    amplification(r.up.loads, r.up.distinct),
  ]);
  const text = [
    table(
      ['layout', 'requests', 'distinct cards', 'conns', '200s', 'p50 ms', 'p99 ms', 'max ms', 'wire p99', 'wire max', 'wire max: 1st / later', 'server p99', 'server max', 'served as', 'upstream calls', 'card loads', 'loads per card'],
      rows,
    ),
    '',
    `Every request is a new customer asking for 3 cards (one upstream call per customer, the keys batched); upstream ${UPSTREAM_MS} ms, ` +
      `budgetMs ${BUDGET_MS} (so every answer is a placeholder), upstream concurrency 256. Limit: ${limit} ms. ` +
      (runs.some((r) => r.wire)
        ? "Wire: from a request's first segment into the server's port to its answer's first segment out (tcpdump on lo); 1st: each connection's first answer (the connections open at once, so these are the fresh process's first wave), later: all others. Server: from the listener taking the request to the answer ready (its log). "
        : 'Wire: not captured (tcpdump missing or not allowed). Server: from the listener taking the request to the answer ready (its log). ') +
      runs.map((r) => `${r.layout}: refreshes drained ${fmt.int(r.drainMs)} ms after the last answer; warnings ${JSON.stringify(r.warnings)}${r.up.duplicated ? `; loaded more than once: ${r.up.duplicates.join(', ')}; their refresh jobs as logged: ${r.traces.join(' | ')}` : ''}.`).join(' '),
  ].join('\n');
  const targets = runs.flatMap((r) => [
    target(
      `cold answers within budget + 50 ms (${r.layout})`,
      (r.wire ? r.wire.max : r.load.latency.max) <= limit && r.load.non2xx === 0 && r.load.errors === 0,
      r.wire
        ? `max ${fmt.ms(r.wire.max, 0)} ms on the wire (1st ${fmt.ms(r.wire.firstMax, 0)}, later ${fmt.ms(r.wire.laterMax, 0)}; client ${fmt.ms(r.load.latency.max, 0)}, server ${fmt.ms(r.serverMs.at(-1), 0)} ms)`
        : `max ${fmt.ms(r.load.latency.max, 0)} ms (server ${fmt.ms(r.serverMs.at(-1), 0)} ms)`,
      `≤ ${limit} ms`,
    ),
    target(
      `upstream loads per distinct card (cold storm, ${r.layout})`,
      r.up.loads === r.up.distinct && r.up.distinct === r.expected,
      `${amplification(r.up.loads, r.up.distinct)}, ${fmt.int(r.up.distinct)}/${fmt.int(r.expected)} loaded`,
      '1.00',
    ),
  ]);
  return { title: '2. Cold storm', text, data: runs, targets };
}
