/**
 * Scenario 5, memory: N typical ~2 KB cards (4 per customer) loaded through the real product
 * (`serve` + `worker`, upstream answering at once), then every key under the run's prefix is
 * weighed with `MEMORY USAGE … SAMPLES 0` and grouped by kind; `INFO memory` before and after
 * gives the whole-instance view (noisier: the Redis is shared). Extrapolated to a million cards.
 */
import { WORKSPACE_ID, cardKeys } from './lib/cardproxy.mjs';
import { cardRedisKey, countExisting, openEnv } from './lib/env.mjs';
import { runLoad } from './lib/load.mjs';
import { scanKeys, usedMemory } from './lib/redis.mjs';
import { fmt, table, target, waitFor } from './lib/util.mjs';

function kindOf(key, prefix) {
  if (key === `${prefix}:events` || key.startsWith(`${prefix}:events-`)) return 'event log (streams)';
  if (key.startsWith(`${prefix}:{refresh-`)) return 'refresh queue (BullMQ)';
  if (key.includes('}:customer-index:')) return 'customer index (sets)';
  if (key.includes('}:card:')) return 'card projections';
  if (key.includes('}:components:')) return 'card components';
  if (key.includes('}:cards:')) return "customer's card list (set)";
  if (key.includes('}:served:')) return 'served markers';
  if (key.includes('}:inflight:')) return 'in-flight markers';
  return 'other';
}

export async function runMemory(ctx) {
  const cards = ctx.quick ? 5000 : 100_000;
  const perCustomer = 4;
  const customers = cards / perCustomer;
  const keys = cardKeys(perCustomer);
  const env = await openEnv(ctx, {
    tag: 'memory',
    upstream: { latencyMs: 0 },
    config: { budgetMs: 1000, concurrency: 32, cards: keys, ttlSeconds: 3600 },
    processes: [{ role: 'serve' }, { role: 'worker' }],
  });
  try {
    const serve = env.procs[0];
    const before = await usedMemory(ctx.redis);
    const started = Date.now();
    await runLoad({ url: `${serve.url}/cards`, connections: 100, amount: customers, keys, customers: { prefix: 'mem', offset: 0 } });
    const redisKeys = [];
    for (let c = 0; c < customers; c++) for (const k of keys) redisKeys.push(cardRedisKey(env, WORKSPACE_ID, `mem${c}`, k));
    await waitFor(async () => (await countExisting(ctx.redis, redisKeys)) === cards, {
      timeoutMs: ctx.quick ? 120_000 : 10 * 60_000,
      everyMs: 500,
      what: `${cards} cards to be cached`,
    });
    const fillMs = Date.now() - started;
    await env.upstream.settle({ quietMs: 500, timeoutMs: 30_000 });
    const after = await usedMemory(ctx.redis);

    // Weigh every key of the prefix.
    const all = await scanKeys(ctx.redis, env.prefix);
    const byKind = new Map();
    for (let i = 0; i < all.length; i += 1000) {
      const batch = all.slice(i, i + 1000);
      const pipeline = ctx.redis.pipeline();
      for (const key of batch) pipeline.memory('USAGE', key, 'SAMPLES', '0');
      const results = await pipeline.exec();
      batch.forEach((key, j) => {
        const kind = kindOf(key, env.prefix);
        const entry = byKind.get(kind) ?? { keys: 0, bytes: 0 };
        entry.keys++;
        entry.bytes += Number(results[j][1] ?? 0);
        byKind.set(kind, entry);
      });
    }
    const events = await ctx.redis.xlen(`${env.prefix}:events`);
    // Served markers are a hash per (customer, thread) with a field per answered card: count the fields.
    const servedKeys = all.filter((key) => kindOf(key, env.prefix) === 'served markers');
    let markers = 0;
    for (let i = 0; i < servedKeys.length; i += 1000) {
      const pipeline = ctx.redis.pipeline();
      for (const key of servedKeys.slice(i, i + 1000)) pipeline.hlen(key);
      for (const [, fields] of (await pipeline.exec()) ?? []) markers += Number(fields ?? 0);
    }

    // The card as Plain gets it, from a sample of the cached states.
    const sample = redisKeys.filter((_, i) => i % Math.max(1, Math.floor(redisKeys.length / 1000)) === 0);
    let jsonBytes = 0;
    // A card is stored as its projection and, beside it, its components (the JSON as served).
    const values = await ctx.redis.mget(sample);
    const components = await ctx.redis.mget(sample.map((key) => env.keys.components(env.keys.parseCard(key))));
    values.forEach((raw, i) => {
      const state = JSON.parse(raw);
      const ref = env.keys.parseCard(sample[i]);
      jsonBytes += Buffer.byteLength(JSON.stringify({ key: ref.cardKey, timeToLiveSeconds: state.data.ttlSeconds, components: JSON.parse(components[i]) }));
    });
    const cardJson = jsonBytes / values.length;
    const storedValue = values.reduce((n, v, i) => n + Buffer.byteLength(v) + Buffer.byteLength(components[i]), 0) / values.length;

    const kind = (name) => byKind.get(name) ?? { keys: 0, bytes: 0 };
    const proj = { bytes: kind('card projections').bytes + kind('card components').bytes };
    const index = kind('customer index (sets)');
    const cardList = kind("customer's card list (set)");
    const served = kind('served markers');
    const log = kind('event log (streams)');
    const perCard = proj.bytes / cards;
    const perCardWithIndex = (proj.bytes + index.bytes + cardList.bytes) / cards;
    const perEvent = log.bytes / Math.max(1, events);
    const totalPrefix = [...byKind.values()].reduce((n, e) => n + e.bytes, 0);
    const scale = 1_000_000 / cards;
    const rows = [...byKind.entries()]
      .sort((a, b) => b[1].bytes - a[1].bytes)
      .map(([name, e]) => [name, fmt.int(e.keys), fmt.bytes(e.bytes), fmt.int(e.bytes / cards), fmt.bytes(e.bytes * scale)]);
    rows.push(['all keys of the run', fmt.int(all.length), fmt.bytes(totalPrefix), fmt.int(totalPrefix / cards), fmt.bytes(totalPrefix * scale)]);
    rows.push(['INFO used_memory delta (shared Redis)', '', fmt.bytes(after - before), fmt.int((after - before) / cards), fmt.bytes((after - before) * scale)]);
    const ratio = perCardWithIndex / cardJson;
    const text = [
      table(['what', 'keys', `bytes for ${fmt.int(cards)} cards`, 'bytes per card', 'extrapolated to 1,000,000 cards'], rows),
      '',
      `${fmt.int(cards)} cards of ${fmt.int(customers)} customers (4 each) loaded through serve + worker in ${(fillMs / 1000).toFixed(1)} s; ${fmt.int(events)} events in the log. ` +
        `A card's JSON as Plain gets it: ${fmt.int(cardJson)} bytes on average; its stored state: ${fmt.int(storedValue)} bytes. ` +
        `Per cached card: projection ${fmt.int(perCard)} B (${(perCard / cardJson).toFixed(2)} × JSON), with its share of the customer look-up keys (index and card list) ${fmt.int(perCardWithIndex)} B (${ratio.toFixed(2)} × JSON); ` +
        `per event (card.refreshed, which carries the components too): ${fmt.int(perEvent)} B (${(perEvent / cardJson).toFixed(2)} × JSON); ` +
        `per answered card, the served marker: ${fmt.int(served.bytes / Math.max(1, markers))} B (${fmt.int(markers)} markers in ${fmt.int(served.keys)} hashes, one per customer and thread). ` +
        `Everything per card incl. its event and marker: ${fmt.int(totalPrefix / cards)} B (${(totalPrefix / cards / cardJson).toFixed(2)} × JSON) → ${fmt.bytes(totalPrefix * scale)} for a million cards with one event each.`,
    ].join('\n');
    return {
      title: '5. Memory',
      text,
      data: { cards, byKind: Object.fromEntries(byKind), cardJson, perCard, perCardWithIndex, perEvent, usedDelta: after - before },
      targets: [
        target('Redis memory per cached card ≤ 1.5 × its JSON (projection + look-up keys)', ratio <= 1.5, `${ratio.toFixed(2)} × (${fmt.int(perCardWithIndex)} B / ${fmt.int(cardJson)} B)`, '≤ 1.5 ×'),
      ],
    };
  } finally {
    await env.close();
  }
}
