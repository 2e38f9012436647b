/**
 * Scenario 0, first look: the product's reason to exist. Customers write in over time (Plain
 * sends a webhook for each new thread); the legacy API takes 1-20 s per customer; an agent opens
 * each conversation some seconds after its webhook, and that first `/cards` request is what the
 * agent sees. Run twice on the same customers (same latencies, same pick-up delays): warming on
 * (the webhook is delivered to `/webhooks/plain`) and off (no webhook). Reported per run: share of
 * first looks that show real data in every card, that show a placeholder, that show an error;
 * p50/p99 answer time; upstream calls per customer.
 */
import { WORKSPACE_ID, SECRET, cardKeys, postCards, scrapeMetrics, sumBy } from './lib/cardproxy.mjs';
import { openEnv, pool } from './lib/env.mjs';
import { fmt, percentileSorted, sign, sleep, table, target } from './lib/util.mjs';

const BUDGET_MS = 10_000; // the default budgetMs
const KEYS = cardKeys(3);

/** A small deterministic generator, so both runs see the same customers. */
function random(seed) {
  let x = seed >>> 0;
  return () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

function plan(quick) {
  const customers = quick ? 16 : 60;
  const arrivalEveryMs = 1000;
  const [pickMin, pickMax] = quick ? [3_000, 12_000] : [5_000, 30_000];
  const next = random(42);
  return Array.from({ length: customers }, (_, i) => ({
    index: i,
    arriveAt: i * arrivalEveryMs,
    pickupMs: Math.round(pickMin + next() * (pickMax - pickMin)),
    upstreamMs: Math.round(1_000 + next() * 19_000),
  }));
}

function webhookBody(customerId, threadId) {
  return JSON.stringify({
    id: `wh_${customerId}`,
    type: 'thread.thread_created',
    timestamp: new Date().toISOString(),
    workspaceId: WORKSPACE_ID,
    payload: {
      thread: {
        id: threadId,
        externalId: null,
        customer: { id: customerId, email: { email: `${customerId}@example.com`, isVerified: true }, externalId: `ext-${customerId}` },
      },
    },
    webhookMetadata: { webhookDeliveryAttemptTimestamp: new Date().toISOString() },
  });
}

/** How a first look showed: every card real data, or at least one placeholder / error card. */
function classify(text) {
  const body = JSON.parse(text);
  const shown = body.cards.map((c) => JSON.stringify(c.components));
  if (shown.some((s) => s.includes('could not be loaded'))) return 'error';
  if (shown.some((s) => s.includes('Loading'))) return 'placeholder';
  return body.cards.length === KEYS.length ? 'data' : 'error';
}

async function runOnce(ctx, warming, customers) {
  const tag = `firstlook-${warming ? 'on' : 'off'}`;
  const byCustomer = new Map(customers.map((c) => [`${tag}-${c.index}`, c]));
  const env = await openEnv(ctx, {
    tag,
    upstream: { latencyFor: (customerId) => byCustomer.get(customerId)?.upstreamMs ?? 1000 },
    config: { budgetMs: BUDGET_MS, concurrency: 16, ttlSeconds: 3600, cards: KEYS },
    processes: [{ role: 'start' }],
  });
  try {
    const proc = env.procs[0];
    const started = Date.now();
    const looks = await pool(customers, customers.length, async (c) => {
      const customerId = `${tag}-${c.index}`;
      await sleep(Math.max(0, started + c.arriveAt - Date.now()));
      if (warming) {
        const body = webhookBody(customerId, `th-${customerId}`);
        const r = await fetch(`${proc.url}/webhooks/plain`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'plain-request-signature': sign(SECRET, body) },
          body,
        });
        if (r.status !== 200) throw new Error(`webhook answered ${r.status}: ${await r.text()}`);
      }
      await sleep(Math.max(0, started + c.arriveAt + c.pickupMs - Date.now()));
      const look = await postCards(proc.url, { customerId, keys: KEYS });
      return { ms: look.ms, shown: look.status === 200 ? classify(look.text) : 'error' };
    });
    await env.upstream.settle({ quietMs: 1000, timeoutMs: 60_000 });
    const up = env.upstream.stats();
    const webhooks = sumBy(await scrapeMetrics(proc.url, ['cardproxy_webhooks_total']), 'cardproxy_webhooks_total', 'outcome');
    return { warming, looks, up, webhooks };
  } finally {
    await env.close();
  }
}

export async function runFirstLook(ctx) {
  const customers = plan(ctx.quick);
  const runs = [];
  for (const warming of [true, false]) {
    runs.push(await runOnce(ctx, warming, customers));
    const r = runs.at(-1);
    ctx.log(`  warming ${warming ? 'on' : 'off'}: ${r.looks.filter((l) => l.shown === 'data').length}/${r.looks.length} first looks with data`);
  }
  const share = (r, kind) => r.looks.filter((l) => l.shown === kind).length / r.looks.length;
  const rows = runs.map((r) => {
    const ms = r.looks.map((l) => l.ms).sort((a, b) => a - b);
    return [
      r.warming ? 'on (webhook per customer)' : 'off',
      String(r.looks.length),
      fmt.pct(share(r, 'data')),
      fmt.pct(share(r, 'placeholder')),
      fmt.pct(share(r, 'error')),
      fmt.int(percentileSorted(ms, 50)),
      fmt.int(percentileSorted(ms, 99)),
      fmt.ratio(r.up.calls / r.looks.length),
    ];
  });
  const pickups = customers.map((c) => c.pickupMs);
  const text = [
    table(['warming', 'customers', 'first looks with data', 'placeholders', 'errors', 'p50 ms', 'p99 ms', 'upstream calls per customer'], rows),
    '',
    `${customers.length} customers write in, one a second; each customer's legacy API call takes 1-20 s ` +
      `(uniform, the same customer takes the same time in both runs); an agent opens each conversation ` +
      `${fmt.int(Math.min(...pickups) / 1000)}-${fmt.int(Math.max(...pickups) / 1000)} s after the customer wrote (uniform); ` +
      `budgetMs ${BUDGET_MS} (the default), ${KEYS.length} cards per customer from one upstream (concurrency 16), one \`start\` process. ` +
      `A first look "with data" shows real data in all ${KEYS.length} cards. Webhooks with warming on: ${JSON.stringify(runs[0].webhooks)}.`,
  ].join('\n');
  const on = runs[0];
  const off = runs[1];
  const targets = [
    target('first looks with real data, warming on', share(on, 'data') >= 0.9, fmt.pct(share(on, 'data')), '≥ 90%'),
    target('warming beats no warming on first looks', share(on, 'data') > share(off, 'data'), `${fmt.pct(share(on, 'data'))} vs ${fmt.pct(share(off, 'data'))}`, 'on > off'),
    target('upstream calls per customer, warming on', on.up.calls === on.looks.length, fmt.ratio(on.up.calls / on.looks.length), '1.00'),
  ];
  return { title: '0. First look (warming)', text, data: runs, targets };
}
