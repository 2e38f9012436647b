/**
 * What a warm /cards request costs in Redis, watched with MONITOR on the real Redis: with the
 * near cache (the default) repeated warm multi-key requests send no command at all; without it
 * (`nearCache.maxBytes: 0`) one MGET each. Neither writes anything.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, startTestProxy, testConfig, type TestProxy } from '../helpers/harness.js';
import { monitor } from '../helpers/monitor.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';

// MONITOR sees every client of a server: on the shared Redis, other test runs' traffic floods it
// (and can trip ioredis' monitor mode). These tests watch a Redis of their own.
let privateRedis: PrivateRedis;
beforeAll(async () => {
  privateRedis = await startPrivateRedis();
});
afterAll(async () => {
  await privateRedis.stop();
});

const configFor = (upstreamUrl: string, overrides: Record<string, unknown> = {}) =>
  testConfig(upstreamUrl, { redis: { url: privateRedis.url(), keyPrefix: `test-${randomUUID().slice(0, 8)}` }, ...overrides });

let legacy: FakeUpstream | undefined;
afterEach(async () => {
  await cleanupProxies();
  await legacy?.close();
});

/** The commands on the test's card states and served markers while `run` runs (not the queue's, not the event feed's). */
async function watchCommands(prefix: string, run: () => Promise<void>, settle: (seen: string[]) => boolean): Promise<string[]> {
  const watched = await monitor(privateRedis.port);
  const cardKey = (a: string) => a.startsWith(`${prefix}:{`) && (a.includes('}:card:') || a.includes('}:served:'));
  const seen = () => watched.lines.filter((l) => l.args.some(cardKey)).map((l) => l.args.join(' '));
  try {
    await run();
    await eventually(() => settle(seen()), 2000, 'the expected reads');
    await new Promise((r) => setTimeout(r, 100)); // anything written after the answers shows up too
  } finally {
    watched.stop();
  }
  return seen();
}

/** The near cache's look-up counts (hit, miss, bypass) as /metrics reports them. */
async function nearLookups(proxy: TestProxy): Promise<Record<string, number>> {
  const metric = await proxy.metrics.registry.getSingleMetric('cardproxy_near_cache_lookups_total')!.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.result), v.value]));
}

it('answers repeated warm multi-key requests from the near cache: no Redis command, no write', async () => {
  legacy = await startFakeUpstream();
  const config = configFor(legacy.url, { defaults: { ttlSeconds: 300 } });
  const proxy = await startTestProxy(config);
  await postCards(proxy, cardsBody(['alpha', 'beta'])); // cold: loads the cards
  await postCards(proxy, cardsBody(['alpha', 'beta'])); // warm: records when Plain's copies expire
  await new Promise((r) => setTimeout(r, 150)); // the feed has passed the load's events
  const before = await nearLookups(proxy);

  let requests = 0;
  const seen = await watchCommands(
    config.redis.keyPrefix,
    async () => {
      // Until two requests' worth of hits (a loaded machine may make the feed lag for a while).
      for (; requests < 40; requests++) {
        const res = await postCards(proxy, cardsBody(['alpha', 'beta']));
        expect(res.body.cards.map((c: { timeToLiveSeconds: number }) => c.timeToLiveSeconds)).toEqual([240, 240]); // 300 less the 60 s refresh-ahead lead
        if ((await nearLookups(proxy)).hit! - before.hit! >= 4) {
          requests++;
          break;
        }
      }
    },
    () => true,
  );
  const after = await nearLookups(proxy);
  const hits = after.hit! - before.hit!;
  // While the feed lags past its bound, a request reads Redis (one MGET for both keys, one HMGET
  // of their markers, in one round trip), never a copy that could be stale. Every other look-up
  // is a hit, with no Redis command at all.
  const fromRedis = after.miss! - before.miss! + (after.bypass! - before.bypass!);
  expect(hits + fromRedis).toBe(2 * requests);
  expect(hits).toBeGreaterThanOrEqual(4);
  const reads = fromRedis / 2;
  expect(seen.map((command) => command.split(' ')[0]!.toLowerCase()).sort()).toEqual([...Array(reads).fill('hmget'), ...Array(reads).fill('mget')]);
  expect(legacy.calls).toHaveLength(1);
});

it('answers repeated warm requests with one MGET and one HMGET each and no writes when the near cache is off', async () => {
  legacy = await startFakeUpstream();
  const config = configFor(legacy.url, { defaults: { ttlSeconds: 300 }, nearCache: { maxBytes: 0 } });
  const proxy = await startTestProxy(config);
  await postCards(proxy, cardsBody(['alpha', 'beta']));
  await postCards(proxy, cardsBody(['alpha', 'beta']));
  const seen = await watchCommands(
    config.redis.keyPrefix,
    async () => {
      for (let i = 0; i < 3; i++) expect((await postCards(proxy, cardsBody(['alpha', 'beta']))).status).toBe(200);
    },
    (s) => s.length >= 6,
  );
  expect(seen.map((command) => command.split(' ')[0]!.toLowerCase())).toEqual(['mget', 'hmget', 'mget', 'hmget', 'mget', 'hmget']);
  expect(legacy.calls).toHaveLength(1);
});

it('reads only the served marker of a warm single-key request (it may be a manual reload)', async () => {
  legacy = await startFakeUpstream();
  const config = configFor(legacy.url, { defaults: { ttlSeconds: 300 } });
  const proxy = await startTestProxy(config);
  await postCards(proxy, cardsBody(['alpha', 'beta'])); // loads the cards
  await postCards(proxy, cardsBody(['alpha', 'beta'])); // keeps them in the near cache
  await new Promise((r) => setTimeout(r, 150)); // the feed has passed the load's events
  const seen = await watchCommands(
    config.redis.keyPrefix,
    async () => {
      const res = await postCards(proxy, cardsBody(['alpha'], 'c_1', { thread: { id: 't_single' } }));
      expect(res.body.cards[0].timeToLiveSeconds).toBe(240);
    },
    (s) => s.some((c) => /^(eval|evalsha) /i.test(c)),
  );
  // One HMGET of the marker alone (the state came from the near cache; with the feed lagging for
  // a moment, an MGET of the state goes with it), then the marker written.
  const key = (kind: string, rest: string) => `${config.redis.keyPrefix}:\\{[^}]*\\}:${kind}:w_test:c_1:${rest}`;
  const reads = /^mget /i.test(seen[0]!) ? 2 : 1;
  if (reads === 2) expect(seen[0]).toMatch(new RegExp(`^mget ${key('card', 'alpha')} ${key('components', 'alpha')}$`, 'i'));
  expect(seen[reads - 1]).toMatch(new RegExp(`^hmget ${key('served', 't_single')} alpha$`, 'i'));
  // (MONITOR also shows the commands the script runs: HSET, PTTL, PEXPIRE.)
  const writes = seen.slice(reads);
  expect(writes.filter((c) => /^(eval|evalsha) /i.test(c))).toHaveLength(1);
  expect(writes.every((c) => /^(eval|evalsha|hset|pttl|pexpire) /i.test(c) && c.includes(':served:w_test:c_1:t_single'))).toBe(true);
  expect(legacy.calls).toHaveLength(1);
});
