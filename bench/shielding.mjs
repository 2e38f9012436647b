/**
 * Scenario 4, shielding: the upstream is configured with concurrency 4 (and refuses a 5th
 * request in flight with 503), 10 000 distinct cold customers arrive through one `serve`
 * process, two `worker` processes refresh. The upstream must never see more than 4 in flight;
 * reported is the time until every card is cached.
 */
import { WORKSPACE_ID, logMessageCounts, scrapeMetrics, sumBy } from './lib/cardproxy.mjs';
import { cardRedisKey, countExisting, openEnv } from './lib/env.mjs';
import { runLoad } from './lib/load.mjs';
import { amplification, fmt, table, target, waitFor } from './lib/util.mjs';

export async function runShielding(ctx) {
  const customers = ctx.quick ? 1000 : 10_000;
  const limit = 4;
  const upstreamMs = 10;
  const env = await openEnv(ctx, {
    tag: 'shield',
    upstream: { latencyMs: upstreamMs, limit },
    config: { budgetMs: 1000, concurrency: limit },
    processes: [{ role: 'serve' }, { role: 'worker', name: 'worker-a' }, { role: 'worker', name: 'worker-b' }],
  });
  try {
    const serve = env.procs[0];
    const ids = Array.from({ length: customers }, (_, i) => `sh${i}`);
    const redisKeys = ids.map((id) => cardRedisKey(env, WORKSPACE_ID, id, 'card-01'));
    const started = Date.now();
    const load = await runLoad({
      url: `${serve.url}/cards`,
      connections: 250,
      amount: customers,
      keys: ['card-01'],
      customers: { prefix: 'sh', offset: 0 },
    });
    const loadMs = Date.now() - started;
    let cached = 0;
    const allCached = await waitFor(async () => (cached = await countExisting(ctx.redis, redisKeys)) === customers, {
      timeoutMs: ctx.quick ? 90_000 : 10 * 60_000,
      everyMs: 250,
      what: `${customers} cards to be cached`,
    }).then(
      () => true,
      () => false,
    );
    const warmMs = Date.now() - started;
    await env.upstream.settle({ quietMs: 500, timeoutMs: 30_000 });
    const up = env.upstream.stats();
    const served = sumBy(await scrapeMetrics(serve.url, ['cardproxy_cards_served_total']), 'cardproxy_cards_served_total', 'source');
    const floorMs = (customers / limit) * upstreamMs;
    const warnings = Object.assign({}, ...env.procs.map((p) => logMessageCounts(p.logFile)));
    const text = [
      table(
        ['customers', 'requests answered', 'load took', 'all cached after', 'cards/s', 'upstream floor', 'max in flight', 'refused (over limit)', 'upstream calls', 'loads per card'],
        [[
          fmt.int(customers),
          fmt.int(load.statuses['200'] ?? 0),
          `${(loadMs / 1000).toFixed(1)} s`,
          allCached ? `${(warmMs / 1000).toFixed(1)} s` : `not all: ${fmt.int(cached)} after ${(warmMs / 1000).toFixed(0)} s`,
          fmt.int(customers / (warmMs / 1000)),
          `${(floorMs / 1000).toFixed(1)} s`,
          String(up.maxInFlight),
          String(up.violations),
          fmt.int(up.calls),
          amplification(up.loads, up.distinct),
        ]],
      ),
      '',
      `One card per customer, 250 connections, budgetMs 1000 (answers are mostly placeholders; refreshes go on in the background). ` +
        `Upstream ${upstreamMs} ms per call, so ${limit} in flight cannot warm faster than ${(floorMs / 1000).toFixed(1)} s. ` +
        `p99 of the answers ${fmt.ms(load.latency.p99, 1)} ms, max ${fmt.ms(load.latency.max, 1)} ms; served as ${JSON.stringify(served)}; warnings logged: ${JSON.stringify(warnings)}.`,
    ].join('\n');
    return {
      title: '4. Shielding',
      text,
      data: { load, upstream: up, warmMs, cached },
      targets: [
        target(`shielding: upstream in flight ≤ ${limit}`, up.maxInFlight <= limit && up.violations === 0, `max ${up.maxInFlight}, ${up.violations} refused`, `≤ ${limit}`),
        target('shielding: every card cached', allCached, `${fmt.int(cached)} / ${fmt.int(customers)} in ${(warmMs / 1000).toFixed(1)} s`, 'all'),
        target('upstream loads per distinct card (shielding)', up.loads === up.distinct && up.distinct === customers, amplification(up.loads, up.distinct), '1.00'),
      ],
    };
  } finally {
    await env.close();
  }
}
