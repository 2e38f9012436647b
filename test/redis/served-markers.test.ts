/**
 * Served markers against the real Redis: what an answer records, and the claim a worker makes
 * when a card lands (exactly once, only placeholder/error copies Plain still holds).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { keyLayout, type KeyLayout } from '../../src/redis/keys.js';
import { defineCommands } from '../../src/redis/commands/index.js';
import { ServedMarkers, writeServedMarkers, type ServedEntry } from '../../src/redis/served-markers.js';
import { CardCommands } from '../../src/redis/card-commands.js';
import type { ServedKind } from '../../src/core/served-marker.js';
import type { CardRef } from '../../src/core/card-ref.js';
import { deleteByPrefix, redisUrl } from '../helpers/harness.js';

let redis: Redis;
let keys: KeyLayout;
const NOW = 1_800_000_000_000;

beforeAll(() => {
  redis = new Redis(redisUrl());
  defineCommands(redis);
});
afterAll(() => redis.disconnect());
afterEach(async () => deleteByPrefix(redis, keys.prefix));

function entry(contextThreadId: string | null, cardKey: string, kind: ServedKind, until = NOW + 15_000): ServedEntry {
  return { hash: keys.served('w', 'c', contextThreadId), workspaceId: 'w', customerId: 'c', contextThreadId, cardKey, marker: { until, kind } };
}

/** Writes `entries` as one command; resolves with the number of hashes written. */
async function mark(entries: ServedEntry[]): Promise<number> {
  return writeServedMarkers(new CardCommands(redis), keys, entries, NOW);
}

const customerCard = (cardKey: string): CardRef => ({ workspaceId: 'w', customerId: 'c', threadId: null, cardKey });

/** A hash's TTL (ms), asserted to lie within `ms` minus one second and `ms`. */
async function expectPttl(key: string, ms: number): Promise<void> {
  const pttl = await redis.pttl(key);
  expect(pttl).toBeGreaterThan(ms - 1000);
  expect(pttl).toBeLessThanOrEqual(ms);
}

it("records what was served in its context's hash, which lives as long as its longest marker", async () => {
  keys = keyLayout(`test-${randomUUID().slice(0, 8)}`);
  // Three contexts, three hashes (consecutive entries of one context are one HSET).
  expect(
    await mark([
      entry(null, 'alpha', 'data'),
      entry(null, 'beta', 'data', NOW + 60_000),
      entry('th_1', 'alpha', 'placeholder'),
      entry('th_2', 'beta', 'error', NOW + 300_000),
      entry('th_2', 'alpha', 'data', NOW + 5000),
    ]),
  ).toBe(3);
  expect(await redis.hgetall(keys.served('w', 'c', null))).toEqual({ alpha: String(NOW + 15_000), beta: String(NOW + 60_000) });
  expect(await redis.hgetall(keys.served('w', 'c', 'th_1'))).toEqual({ alpha: `${NOW + 15_000}:placeholder` });
  expect(await redis.hgetall(keys.served('w', 'c', 'th_2'))).toEqual({ beta: `${NOW + 300_000}:error`, alpha: String(NOW + 5000) });
  expect(await redis.smembers(keys.awaitingReload('w', 'c', 'alpha'))).toEqual(['"th_1"']);
  expect(await redis.smembers(keys.awaitingReload('w', 'c', 'beta'))).toEqual(['"th_2"']);
  // Markers are written relative to the injected now, which lies in the future here.
  await expectPttl(keys.served('w', 'c', null), 60_000);
  await expectPttl(keys.served('w', 'c', 'th_2'), 300_000);
  await expectPttl(keys.awaitingReload('w', 'c', 'beta'), 300_000);
  // A later, shorter marker in the same context does not shorten the hash's life.
  await mark([entry(null, 'alpha', 'data', NOW + 2000)]);
  expect(await redis.hget(keys.served('w', 'c', null), 'alpha')).toBe(String(NOW + 2000));
  await expectPttl(keys.served('w', 'c', null), 60_000);
});

it("writes a turn's many markers of one context, past what one HSET's unpack takes", async () => {
  keys = keyLayout(`test-${randomUUID().slice(0, 8)}`);
  // 4,500 answers of one customer outside threads in one turn: 9,000 values for one hash.
  const entries = Array.from({ length: 4500 }, (_, i) => entry(null, `card-${i % 3000}`, 'data', NOW + 15_000 + i));
  // 4,500 pairs in HSETs of at most 1,000.
  expect(await mark(entries)).toBe(5);
  const stored = await redis.hgetall(keys.served('w', 'c', null));
  expect(Object.keys(stored)).toHaveLength(3000);
  // The later answer of a card wins.
  expect(stored['card-0']).toBe(String(NOW + 15_000 + 3000));
  expect(stored['card-2999']).toBe(String(NOW + 15_000 + 2999));
  await expectPttl(keys.served('w', 'c', null), 15_000 + 4499);
});

it('claims each placeholder or error context of a landed customer-scope card once, across claimers', async () => {
  keys = keyLayout(`test-${randomUUID().slice(0, 8)}`);
  await mark([entry(null, 'alpha', 'placeholder'), entry(null, 'beta', 'error'), entry('th_1', 'alpha', 'error'), entry('th_2', 'alpha', 'data'), entry('th_3', 'beta', 'placeholder')]);
  const other = new Redis(redisUrl());
  const a = new ServedMarkers(redis, keys);
  const b = new ServedMarkers(other, keys);
  try {
    const [first, second] = await Promise.all([a.claimAwaitingReload([customerCard('alpha')], NOW), b.claimAwaitingReload([customerCard('alpha')], NOW)]);
    const claimed = [...first, ...second].map((c) => c.contextThreadId).sort();
    expect(claimed).toEqual([null, 'th_1'].sort());
    for (const c of [...first, ...second]) expect(c.ref).toEqual(customerCard('alpha'));
  } finally {
    other.disconnect();
  }
  // The claimed markers are gone (Plain's copy is discarded by the push); the data marker stays.
  expect(await redis.hget(keys.served('w', 'c', null), 'alpha')).toBeNull();
  // Only the landed card's field: another card's marker in the same context stays.
  expect(await redis.hget(keys.served('w', 'c', null), 'beta')).toBe(`${NOW + 15_000}:error`);
  expect(await redis.hget(keys.served('w', 'c', 'th_1'), 'alpha')).toBeNull();
  expect(await redis.hget(keys.served('w', 'c', 'th_2'), 'alpha')).toBe(String(NOW + 15_000));
  expect(await redis.smembers(keys.awaitingReload('w', 'c', 'alpha'))).toEqual([]);
  expect(await a.claimAwaitingReload([customerCard('alpha')], NOW)).toEqual([]);
  // Another card's context is untouched.
  expect((await redis.smembers(keys.awaitingReload('w', 'c', 'beta'))).sort()).toEqual(['"th_3"', 'null']);
});

it('claims nothing for a copy that expired in Plain or was replaced by data since', async () => {
  keys = keyLayout(`test-${randomUUID().slice(0, 8)}`);
  await mark([entry('th_1', 'alpha', 'placeholder', NOW + 1000), entry('th_2', 'alpha', 'placeholder')]);
  await mark([entry('th_2', 'alpha', 'data')]);
  const markers = new ServedMarkers(redis, keys);
  expect(await markers.claimAwaitingReload([customerCard('alpha')], NOW + 1000)).toEqual([]);
  expect(await redis.smembers(keys.awaitingReload('w', 'c', 'alpha'))).toEqual([]);
  expect(await redis.hget(keys.served('w', 'c', 'th_2'), 'alpha')).toBe(String(NOW + 15_000));
});

it('claims only its own thread for a thread-scope card', async () => {
  keys = keyLayout(`test-${randomUUID().slice(0, 8)}`);
  await mark([entry('th_1', 'alpha', 'placeholder'), entry('th_2', 'alpha', 'placeholder')]);
  const markers = new ServedMarkers(redis, keys);
  const claimed = await markers.claimAwaitingReload([{ ...customerCard('alpha'), threadId: 'th_2' }], NOW);
  expect(claimed).toEqual([{ ref: { ...customerCard('alpha'), threadId: 'th_2' }, contextThreadId: 'th_2' }]);
  expect(await redis.smembers(keys.awaitingReload('w', 'c', 'alpha'))).toEqual(['"th_1"']);
});
