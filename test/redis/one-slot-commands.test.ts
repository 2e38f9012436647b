/**
 * SPEC 13: every multi-key operation stays within one hash slot. A cardproxy with the cluster's
 * key layout (16 shards) runs a workload that touches every kind of write and read (cold loads
 * through the queue, warm reads, a manual reload, failures, invalidation by id and email, TTL
 * overrides, admin events, replay) against a Redis of this test's own, watched with MONITOR. For
 * every command Redis ran, its keys (as `COMMAND GETKEYS` names them) are mapped to their slot:
 * a command, a script together with every call it made, and a MULTI/EXEC block each touch one
 * slot. (The near-cache feed is off here: on one Redis it reads all shards in one XREAD, which
 * on a cluster it does one stream per command, see change-feed.ts.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { admin } from '../helpers/admin-client.js';
import { cardsReply } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';
import { keySlot } from '../helpers/key-slot.js';
import { monitor, type Monitored } from '../helpers/monitor.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';
import { replayEventLog } from '../../src/redis/replay.js';

let privateRedis: PrivateRedis;
beforeAll(async () => {
  privateRedis = await startPrivateRedis();
});
afterAll(async () => {
  await cleanupProxies();
  await privateRedis.stop();
});

const SCRIPT = /^(eval|evalsha|eval_ro|evalsha_ro|fcall|fcall_ro)$/;

/**
 * Groups what must share a slot: a command; a script with its calls; a MULTI/EXEC block. MONITOR
 * shows a script's calls right after the script (`callsFollow`, Redis 7.0) or right before it
 * (later versions, which log a command once it has run).
 */
function atomicGroups(lines: readonly Monitored[], callsFollow: boolean): Monitored[][] {
  const groups: Monitored[][] = [];
  let calls: Monitored[] = [];
  let lastScript: Monitored[] | undefined;
  const transactions = new Map<string, Monitored[]>();
  for (const line of lines) {
    const name = line.args[0]?.toLowerCase() ?? '';
    if (line.client === 'lua') {
      if (callsFollow) lastScript?.push(line);
      else calls.push(line);
      continue;
    }
    const open = transactions.get(line.client);
    if (name === 'multi') transactions.set(line.client, []);
    else if (name === 'exec' || name === 'discard') {
      if (open) groups.push(open);
      transactions.delete(line.client);
    } else if (open) open.push(line);
    else if (SCRIPT.test(name)) {
      lastScript = [line, ...calls];
      calls = [];
      groups.push(lastScript);
    } else groups.push([line]);
  }
  return groups;
}

/** The keys of each command, as Redis itself finds them (none for a command without keys). */
async function keysOf(redis: Redis, lines: readonly Monitored[]): Promise<string[][]> {
  const pipeline = redis.pipeline();
  for (const { args } of lines) pipeline.call('COMMAND', 'GETKEYS', ...args);
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([err, keys]) => (err ? [] : (keys as string[])));
}

it('every command, script and transaction cardproxy runs touches one hash slot (16 shards, as on a cluster)', async () => {
  const legacy = await startTestUpstream((call) => (call.customerId === 'c_broken' ? { status: 404 } : { body: cardsReply(call), delayMs: 20 }));
  const prefix = `test-slots-${randomUUID().slice(0, 8)}`;
  const config = testConfig(legacy.url, {
    redis: { url: privateRedis.url(), keyPrefix: prefix },
    events: { shards: 16 },
    nearCache: { maxBytes: 0 },
    admin: { token: 'slots-admin' },
    budgetMs: 3000,
    cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy', scope: 'thread' } },
  });
  const proxy = await startTestProxy(config);
  const watch = await monitor(privateRedis.port);
  // Which way round this Redis logs a script and its calls: a probe script with one call.
  const probe = privateRedis.client();
  await probe.eval("return redis.call('GET', KEYS[1])", 1, `${prefix}:probe`);
  probe.disconnect();
  const customers = Array.from({ length: 8 }, (_, i) => `c_${i}`);
  try {
    const request = (id: string, keys = ['alpha', 'beta']) => ({
      ...cardsBody(keys, id),
      customer: { id, email: `${id}@Example.com`, externalId: `ext-${id}` },
      thread: { id: `th_${id}`, externalId: null },
    });
    await Promise.all(customers.map((id) => postCards(proxy, request(id)))); // cold, concurrently
    await Promise.all(customers.map((id) => postCards(proxy, request(id)))); // warm
    await postCards(proxy, request('c_1', ['alpha'])); // a manual reload
    await postCards(proxy, request('c_broken'));
    await admin(proxy, 'POST', '/admin/invalidate', { body: { customerId: 'c_2', refresh: true } });
    await admin(proxy, 'POST', '/admin/invalidate', { body: { email: 'C_3@example.com' } });
    await admin(proxy, 'PUT', '/admin/cards/alpha/ttl', { body: { ttlSeconds: 30 } });
    await admin(proxy, 'DELETE', '/admin/cards/alpha/ttl');
    expect((await admin(proxy, 'GET', '/admin/events?limit=5')).status).toBe(200);
    // The reload's and the invalidation's refreshes have run.
    const callsFor = (id: string) => legacy.calls.filter((c) => c.customerId === id).length;
    await eventually(() => callsFor('c_1') === 2 && callsFor('c_2') >= 2 && legacy.inFlight === 0, 5000, `the refreshes to land: ${JSON.stringify(customers.map(callsFor))}`);
    await new Promise((r) => setTimeout(r, 200));
    expect((await replayEventLog({ redis: proxy.redis, store: proxy.store, keys: proxy.store.keys })).cardsWritten).toBeGreaterThanOrEqual(16);
  } finally {
    watch.stop();
  }

  const probeAt = watch.lines.findIndex((l) => l.client !== 'lua' && SCRIPT.test(l.args[0]!.toLowerCase()) && l.args[3] === `${prefix}:probe`);
  expect(probeAt).toBeGreaterThanOrEqual(0);
  const callsFollow = watch.lines[probeAt + 1]?.client === 'lua';
  const lines = watch.lines.slice(probeAt + (callsFollow ? 2 : 1));
  const client = privateRedis.client();
  try {
    const keys = await keysOf(client, lines);
    const keysByLine = new Map(lines.map((line, i) => [line, keys[i]!]));
    let multiKey = 0;
    const crossSlot: string[] = [];
    for (const group of atomicGroups(lines, callsFollow)) {
      const groupKeys = group.flatMap((line) => keysByLine.get(line)!);
      if (groupKeys.length > 1) multiKey++;
      if (new Set(groupKeys.map(keySlot)).size > 1) crossSlot.push(group.map((line) => line.args.slice(0, 6).join(' ')).join(' | '));
    }
    expect(crossSlot).toEqual([]);
    // The workload really ran multi-key commands, scripts of ours and of BullMQ among them.
    expect(multiKey).toBeGreaterThan(50);
    expect(lines.filter((l) => l.client === 'lua').length).toBeGreaterThan(50);
    expect(new Set(lines.flatMap((l) => keysByLine.get(l)!.filter((k) => k.startsWith(`${prefix}:{${prefix}:events-`)).map(keySlot))).size).toBeGreaterThan(3);
  } finally {
    client.disconnect();
  }
});
