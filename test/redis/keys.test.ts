import { keySlot as calculateSlot } from '../helpers/key-slot.js';
import { describe, expect, it } from 'vitest';
import { fnv1a32, keyLayout } from '../../src/redis/keys.js';

const ref = (customerId: string, cardKey = 'alpha', threadId: string | null = null) => ({ workspaceId: 'w_1', customerId, threadId, cardKey });

describe('key layout', () => {
  it('with one shard, keeps the event stream at <prefix>:events (SPEC 6)', () => {
    const keys = keyLayout('p');
    expect(keys.eventStreams).toEqual(['p:events']);
    expect(keys.overrideEvents).toBe('p:events');
    expect(keys.card(ref('c_1'))).toBe('p:{p:events}:card:w_1:c_1:alpha');
    expect(keys.ttlOverrides).toBe('p:{p:events}:ttl-overrides');
    expect(keys.refreshChannel(0)).toBe('p:{p:events}:refresh-outcomes');
  });

  it('puts every key of a customer, its stream, index and channel in one slot', () => {
    const keys = keyLayout('p', 16);
    expect(keys.eventStreams).toHaveLength(16);
    expect(keys.eventStreams[3]).toBe('p:events-3');
    for (let c = 0; c < 200; c++) {
      const customerId = `c_${c}`;
      const shard = keys.shardOf('w_1', customerId);
      const slot = calculateSlot(keys.eventStream(shard));
      const related = [
        keys.card(ref(customerId)),
        keys.card(ref(customerId, 'beta', 't_{9}:x')),
        keys.components(ref(customerId)),
        keys.inflight(ref(customerId)),
        keys.served('w_1', customerId, null),
        keys.served('w_1', customerId, 't_1'),
        keys.awaitingReload('w_1', customerId, 'alpha'),
        keys.customerCards('w_1', customerId),
        keys.customerIndex(shard, 'email', `${customerId}@example.com`),
        keys.refreshChannel(shard),
      ];
      for (const key of related) expect(calculateSlot(key), key).toBe(slot);
    }
    expect(calculateSlot(keys.ttlOverrides)).toBe(calculateSlot(keys.overrideEvents));
  });

  it('spreads customers over all shards, the same way in every process', () => {
    const keys = keyLayout('p', 4);
    const counts = [0, 0, 0, 0];
    for (let c = 0; c < 4000; c++) counts[keys.shardOf('w_1', `c_${c}`)]!++;
    for (const n of counts) expect(n).toBeGreaterThan(800);
    // A changed hash would move customers between shards (a replay is then needed): pinned here.
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((c) => keys.shardOf('w_1', `c_${c}`))).toEqual(PINNED_SHARDS);
  });

  it('hashes with FNV-1a 32 (reference vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('parses back the card of a projection key, ids with separators included', () => {
    const keys = keyLayout('p', 8);
    for (const r of [ref('c_1'), ref('c:{x}', 'beta', 't:1}{'), ref('', 'gamma')]) expect(keys.parseCard(keys.card(r))).toEqual(r);
    expect(keys.parseCard(keys.customerCards('w_1', 'c_1'))).toBeNull();
    expect(keys.parseCard(keys.components(ref('c_1')))).toBeNull();
  });

  it('hands out the same string for a key built before, with and without threads, never mixing them up', () => {
    const keys = keyLayout('p', 4);
    const first = keys.card(ref('c_1', 'alpha', 't_1'));
    expect(keys.card(ref('c_1', 'alpha', 't_1'))).toBe(first);
    // Ids that would collide if they were only concatenated.
    const pairs: Array<[string, string | null]> = [
      ['alpha', null],
      ['alpha', 't'],
      ['alphat', null],
      ['a', 'lphat'],
      ['lphat', 'a'],
      ['1:ta', null],
      ['a', '1:t'],
    ];
    const fresh = keyLayout('p', 4);
    for (const [cardKey, thread] of pairs) {
      // Built twice (kept the second time), and as a layout that never saw them builds them.
      keys.card(ref('c_2', cardKey, thread));
      keys.served('w_1', 'c_2', thread);
    }
    for (const [cardKey, thread] of pairs) {
      expect(keys.card(ref('c_2', cardKey, thread))).toBe(keyLayout('p', 4).card(ref('c_2', cardKey, thread)));
      expect(keys.served('w_1', 'c_2', thread)).toBe(keyLayout('p', 4).served('w_1', 'c_2', thread));
    }
    expect(new Set(pairs.map(([cardKey, thread]) => fresh.card(ref('c_2', cardKey, thread)))).size).toBe(pairs.length);
    // One marker hash per context: no thread id passes for another, or for none.
    const threads = [...new Set(pairs.map(([, thread]) => thread))];
    expect(new Set(threads.map((thread) => fresh.served('w_1', 'c_2', thread))).size).toBe(threads.length);
  });

  it('still builds the right keys after the kept ones were dropped (more customers than it keeps)', () => {
    const keys = keyLayout('p', 8);
    const fresh = keyLayout('p', 8);
    // About 40,000 customers × 2 keys of ~40 characters: past the bound several times.
    for (let c = 0; c < 40_000; c++) {
      expect(keys.card(ref(`c_${c}`))).toBe(`p:{p:events-${fresh.shardOf('w_1', `c_${c}`)}}:card:w_1:c_${c}:alpha`);
      keys.served('w_1', `c_${c}`, null);
    }
    expect(keys.card(ref('c_7'))).toBe(fresh.card(ref('c_7')));
    expect(keys.served('w_1', 'c_7', null)).toBe(fresh.served('w_1', 'c_7', null));
  });

  it('refuses shard counts and shards out of range', () => {
    expect(() => keyLayout('p', 0)).toThrow(RangeError);
    expect(() => keyLayout('p', 1025)).toThrow(RangeError);
    expect(() => keyLayout('p', 4).eventStream(4)).toThrow(RangeError);
  });
});

const PINNED_SHARDS = [2, 1, 0, 3, 2, 1, 0, 3];
