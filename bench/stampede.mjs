/**
 * Scenario 3, stampede: 500 concurrent requests for the same cold card, split over two `start`
 * processes (each also a worker), upstream at 2 s. Single-flight must hold across processes:
 * the upstream sees one call. Each request carries its own thread id (the card is
 * customer-scoped), so none of them can count as a manual reload of an earlier answer.
 */
import { scrapeMetrics, sumBy, mergeCounts } from './lib/cardproxy.mjs';
import { openEnv } from './lib/env.mjs';
import { runLoad } from './lib/load.mjs';
import { fmt, table, target } from './lib/util.mjs';

export async function runStampede(ctx) {
  const perProcess = 250;
  const env = await openEnv(ctx, {
    tag: 'stampede',
    upstream: { latencyMs: 2000 },
    config: { budgetMs: 5000, concurrency: 4 },
    processes: [
      { role: 'start', name: 'start-a' },
      { role: 'start', name: 'start-b' },
    ],
  });
  try {
    const [a, b] = env.procs;
    const spec = (proc, side) => ({
      url: `${proc.url}/cards`,
      connections: perProcess,
      amount: perProcess,
      keys: ['card-01'],
      customers: { prefix: 'stampede-customer', count: 1, offset: 0 },
      threads: { prefix: `thread-${side}-` },
    });
    const [la, lb] = await Promise.all([runLoad(spec(a, 'a')), runLoad(spec(b, 'b'))]);
    await env.upstream.settle({ quietMs: 1000, timeoutMs: 30_000 });
    const up = env.upstream.stats();
    const served = mergeCounts(
      ...(await Promise.all([a, b].map(async (p) => sumBy(await scrapeMetrics(p.url, ['cardproxy_cards_served_total']), 'cardproxy_cards_served_total', 'source')))),
    );
    const ok = (la.statuses['200'] ?? 0) + (lb.statuses['200'] ?? 0);
    const text = [
      table(
        ['requests', 'processes', '200s', 'p50 ms', 'max ms', 'served as', 'upstream calls', 'card loads'],
        [[
          fmt.int(la.total + lb.total),
          '2 × start',
          fmt.int(ok),
          fmt.ms(Math.max(la.latency.p50, lb.latency.p50), 0),
          fmt.ms(Math.max(la.latency.max, lb.latency.max), 0),
          Object.entries(served).map(([k, v]) => `${k} ${fmt.int(v)}`).join(', '),
          fmt.int(up.calls),
          fmt.int(up.loads),
        ]],
      ),
      '',
      `${perProcess} connections per process, one request each, all for the same customer's card-01 (upstream 2 s, budget 5 s).`,
    ].join('\n');
    return {
      title: '3. Stampede',
      text,
      data: { a: la, b: lb, upstream: up, served },
      targets: [target('stampede: upstream calls for 500 concurrent cold requests', up.calls === 1 && ok === 2 * perProcess, `${up.calls} call(s), ${ok}/${2 * perProcess} answered 200`, '1')],
    };
  } finally {
    await env.close();
  }
}
