/**
 * "A warm /cards request costs one Redis round trip": watched with MONITOR on the real Redis,
 * repeated warm requests send one command for the test's keys and write nothing.
 */
import { afterEach, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, redisUrl, startTestProxy, testConfig } from '../helpers/harness.js';

let legacy: FakeUpstream | undefined;
afterEach(async () => {
  await cleanupProxies();
  await legacy?.close();
});

it('answers repeated warm requests with one MGET each and no writes', async () => {
  legacy = await startFakeUpstream();
  const config = testConfig(legacy.url, { defaults: { ttlSeconds: 300 } });
  const proxy = await startTestProxy(config);
  const prefix = config.redis.keyPrefix;
  await postCards(proxy, cardsBody(['alpha', 'beta'])); // cold: loads the cards
  await postCards(proxy, cardsBody(['alpha', 'beta'])); // warm: records when Plain's copies expire

  const monitor = new Redis(redisUrl());
  const seen: string[] = [];
  const feed = await monitor.monitor();
  feed.on('monitor', (_time: string, args: string[]) => {
    if (args.some((a) => a.startsWith(`${prefix}:`))) seen.push(args.join(' '));
  });
  try {
    await new Promise((r) => setTimeout(r, 50)); // MONITOR is live
    for (let i = 0; i < 3; i++) {
      const res = await postCards(proxy, cardsBody(['alpha', 'beta']));
      expect(res.body.cards.map((c: { timeToLiveSeconds: number }) => c.timeToLiveSeconds)).toEqual([240, 240]); // 300 less the 60 s refresh-ahead lead
    }
    await eventually(() => seen.length >= 3, 2000, 'the three reads');
    await new Promise((r) => setTimeout(r, 100)); // anything written after the answers shows up too
  } finally {
    feed.disconnect();
    monitor.disconnect();
  }
  expect(seen).toHaveLength(3);
  for (const command of seen) expect(command.split(' ')[0]!.toLowerCase()).toBe('mget');
  expect(legacy.calls).toHaveLength(1);
});
