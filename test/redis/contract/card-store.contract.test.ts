/**
 * The card store's contract, per Redis target: what each write command guarantees (events and
 * projection together or not at all, compare-and-set under concurrent writers, components beside
 * the projection with one expiry, the look-up index, trimming) and that replay rebuilds exactly
 * what the live writes produced.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CardStateEvent } from '../../../src/core/card-events.js';
import { evolve, type CardState } from '../../../src/core/card-state.js';
import { ComponentsJson } from '../../../src/redis/components-json.js';
import { encodeProjection } from '../../../src/redis/card-codec.js';
import { replayEventLog } from '../../../src/redis/replay.js';
import { deleteAllDerivedKeys, snapshotDerivedKeys } from '../../helpers/derived-keys.js';
import { failed, invalidated, ref, refreshed } from './events.js';
import { redisTargets, TargetContext } from './redis-target.js';
import { Cluster } from 'ioredis';
import type { ServedEntry } from '../../../src/redis/served-markers.js';
import { monitor } from '../../helpers/monitor.js';
import { redisUrl } from '../../helpers/harness.js';

type Entry = [id: string, fields: string[]];

describe.each(redisTargets())('card store on $name', (target) => {
  let ctx: TargetContext;
  afterEach(async () => ctx?.close());

  /** Every event of every shard's stream, oldest first per shard. */
  async function allEvents(): Promise<Array<{ stream: string; id: string; event: CardStateEvent }>> {
    const redis = ctx.client();
    const out: Array<{ stream: string; id: string; event: CardStateEvent }> = [];
    for (const stream of ctx.keys.eventStreams) {
      for (const [id, fields] of (await redis.xrange(stream, '-', '+')) as Entry[]) {
        out.push({ stream, id, event: { type: fields[1], data: JSON.parse(fields[3]!) } as CardStateEvent });
      }
    }
    return out;
  }

  it('appends each event to its customer\'s shard and writes projection, components, card set and index in the same step', async () => {
    ctx = new TargetContext(target);
    const store = ctx.store();
    const redis = ctx.client();
    const now = Date.now();
    const customers = ['c_1', 'c_2', 'c_3', 'c_4', 'c_5', 'c_6'];
    for (const c of customers) await store.applyCardEvents([refreshed(ref(c), now, `hello ${c}`)]);

    const events = await allEvents();
    expect(events).toHaveLength(customers.length);
    for (const { stream, event } of events) {
      expect(stream).toBe(ctx.keys.eventStream(ctx.keys.shardOf('w_1', event.data.customerId)));
    }
    if (target.shards > 1) expect(new Set(events.map((e) => e.stream)).size).toBeGreaterThan(1);
    for (const c of customers) {
      const card = ref(c);
      const state = evolve(undefined, refreshed(card, now, `hello ${c}`));
      expect(await redis.get(ctx.keys.card(card))).toBe(encodeProjection(state));
      expect(await redis.get(ctx.keys.components(card))).toBe(JSON.stringify([{ componentText: { text: `hello ${c}` } }]));
      // One expiry for both: the end of the stale window.
      const [projectionTtl, componentsTtl] = await Promise.all([redis.pttl(ctx.keys.card(card)), redis.pttl(ctx.keys.components(card))]);
      expect(Math.abs(projectionTtl - componentsTtl)).toBeLessThan(50);
      expect(projectionTtl).toBeGreaterThan((300 + 3600) * 1000 - 5000);
      expect(await redis.smembers(ctx.keys.customerCards('w_1', c))).toEqual([ctx.keys.card(card)]);
      expect(await store.findCustomers('email', `${c.toUpperCase()}@EXAMPLE.COM`)).toEqual([{ workspaceId: 'w_1', customerId: c }]);
      expect(await store.findCustomers('externalId', `ext-${c}`)).toEqual([{ workspaceId: 'w_1', customerId: c }]);
      expect(await store.customerCards({ workspaceId: 'w_1', customerId: c })).toEqual([card]);
    }
  });

  it('writes nothing, projection nor index, when the event cannot be appended', async () => {
    ctx = new TargetContext(target);
    const store = ctx.store();
    const redis = ctx.client();
    const card = ref('c_1');
    const shard = ctx.keys.shardOf('w_1', 'c_1');
    await redis.set(ctx.keys.eventStream(shard), 'not a stream');
    await expect(store.applyCardEvents([refreshed(card, Date.now(), 'v1')])).rejects.toThrow(/WRONGTYPE/);
    const touched = [ctx.keys.card(card), ctx.keys.components(card), ctx.keys.customerCards('w_1', 'c_1'), ctx.keys.customerIndex(shard, 'id', 'c_1')];
    for (const key of touched) expect(await redis.exists(key), key).toBe(0);
  });

  it('keeps each projection equal to the fold of its events, in log order, under concurrent writers', async () => {
    ctx = new TargetContext(target);
    const t0 = Date.now();
    const alpha = ref('c_1', 'alpha');
    const beta = ref('c_1', 'beta');
    // Seven writers on their own (connected, scripts loaded) connections race on the same two
    // cards: their reads go out together, so all but one lose each compare-and-set round. (More
    // writers than write attempts (8) could starve one: single-flight keeps real writers far fewer.)
    const stores = Array.from({ length: 7 }, () => ctx.store());
    await Promise.all(stores.map((store, i) => store.applyCardEvents([refreshed(ref(`c_warm${i}`), t0, 'warm')])));
    await Promise.all(
      stores.map(async (store, i) => {
        const at = t0 + i;
        const mine: CardStateEvent[] = [i % 3 === 0 ? failed(alpha, at, `writer ${i}`) : refreshed(alpha, at, `v${i}`)];
        if (i % 2 === 0) mine.push(invalidated(beta, at));
        mine.push(refreshed(beta, at, `b${i}`));
        await store.applyCardEvents(mine);
      }),
    );
    const events = (await allEvents()).filter((e) => e.event.data.customerId === 'c_1');
    expect(events).toHaveLength(7 + 7 + 4);
    const redis = ctx.client();
    for (const card of [alpha, beta]) {
      const folded = events
        .filter((e) => e.event.data.cardKey === card.cardKey)
        .reduce<CardState | undefined>((state, e) => evolve(state, e.event), undefined)!;
      expect(await redis.get(ctx.keys.card(card))).toBe(encodeProjection(folded));
      expect(await redis.get(ctx.keys.components(card))).toBe(JSON.stringify(folded.data!.components));
    }
  });

  it("writes the served markers of one turn's answers as one command per event-log shard, each in its slot, and reads them back", async () => {
    ctx = new TargetContext(target);
    const redis = ctx.client();
    const store = ctx.store({ client: redis });
    const until = Date.now() + 60_000;
    const answer = (customerId: string, turn: number): ServedEntry[] =>
      ['alpha', 'beta'].map((cardKey, i) => ({
        hash: ctx.keys.served('w_1', customerId, `t_${turn}`),
        workspaceId: 'w_1',
        customerId,
        contextThreadId: `t_${turn}`,
        cardKey,
        marker: { until, kind: i === 0 ? 'data' : 'placeholder' },
      }));
    const customers = ['c_1', 'c_2', 'c_3', 'c_4', 'c_5', 'c_6'];
    const shards = new Set(customers.map((c) => ctx.keys.shardOf('w_1', c)));
    const isCluster = redis instanceof Cluster;
    // MONITOR shows every client of the server: only this test's keys are counted.
    const watched = isCluster ? undefined : await monitor(Number(new URL(redisUrl()).port));
    try {
      // Two turns: the answers of the first are written together, the second's after them.
      await Promise.all(customers.map((c) => store.markServed(answer(c, 1))));
      await Promise.all(customers.map((c) => store.markServed(answer(c, 2))));
      for (const turn of [1, 2]) {
        for (const c of customers) {
          const hash = ctx.keys.served('w_1', c, `t_${turn}`);
          expect(await redis.hgetall(hash)).toEqual({ alpha: String(until), beta: `${until}:placeholder` });
          expect(await redis.pttl(hash)).toBeGreaterThan(55_000);
        }
      }
      // A request reads its context's markers with the cards (MGET and HMGET, the same slot).
      const read = await store.readForRequest([ref('c_3', 'alpha'), ref('c_3', 'beta'), ref('c_3', 'gamma')], ctx.keys.served('w_1', 'c_3', 't_2'), true, 't_2');
      expect(read.states).toEqual([undefined, undefined, undefined]);
      expect(read.served).toEqual([{ until, kind: 'data' }, { until, kind: 'placeholder' }, null]);
      for (const c of customers) expect((await redis.smembers(ctx.keys.awaitingReload('w_1', c, 'beta'))).sort()).toEqual(['"t_1"', '"t_2"']);
      if (watched) {
        await new Promise((r) => setTimeout(r, 50)); // MONITOR's lines trail the replies
        const scripts = watched.lines.filter((l) => l.client !== 'lua' && /^eval(sha)?$/i.test(l.args[0]!) && l.args.some((a) => a.startsWith(ctx.prefix)));
        expect(scripts).toHaveLength(2 * shards.size);
      }
    } finally {
      watched?.stop();
    }
  });

  it('keeps the components of a card whose refresh failed, and serves them as the stored bytes', async () => {
    ctx = new TargetContext(target);
    const store = ctx.store();
    const card = ref('c_1');
    const now = Date.now();
    await store.applyCardEvents([refreshed(card, now - 1000, 'still here')]);
    await store.applyCardEvents([failed(card, now, 'upstream down')]);
    const [state] = await store.readStates([card]);
    expect(state!.data!.components).toEqual([{ componentText: { text: 'still here' } }]);
    expect(state!.failure).toMatchObject({ kind: 'retriable', detail: 'upstream down' });
    const { states } = await store.readForRequest([card], ctx.keys.served('w_1', 'c_1', null));
    const served = states[0]!.data!.components;
    expect(served).toBeInstanceOf(ComponentsJson);
    expect((served as ComponentsJson).bytes.toString('utf8')).toBe('[{"componentText":{"text":"still here"}}]');
    // A failure with nothing cached keeps no components.
    await store.applyCardEvents([failed(ref('c_2'), now, 'first look failed')]);
    expect(await ctx.client().exists(ctx.keys.components(ref('c_2')))).toBe(0);
    expect((await store.readStates([ref('c_2')]))[0]).toMatchObject({ data: null, failure: { detail: 'first look failed' } });
  });

  it('deletes projection and components and leaves the card set when nothing is worth keeping', async () => {
    ctx = new TargetContext(target);
    const store = ctx.store();
    const redis = ctx.client();
    const card = ref('c_1');
    const longAgo = Date.now() - 10 * 3600 * 1000; // past ttl + stale
    await store.applyCardEvents([refreshed(ref('c_1', 'beta'), Date.now(), 'kept')]);
    await store.applyCardEvents([refreshed(card, longAgo, 'expired')]);
    expect(await redis.exists(ctx.keys.card(card), ctx.keys.components(card))).toBe(0);
    expect(await redis.smembers(ctx.keys.customerCards('w_1', 'c_1'))).toEqual([ctx.keys.card(ref('c_1', 'beta'))]);
    expect((await allEvents()).map((e) => e.event.data.cardKey)).toEqual(['beta', 'alpha']);
  });

  it('trims each shard to the retention (approximate MINID), keeping recent events', async () => {
    ctx = new TargetContext(target);
    const store = ctx.store({ retentionSeconds: 60 });
    const redis = ctx.client();
    const card = ref('c_1');
    const stream = ctx.keys.eventStream(ctx.keys.shardOf('w_1', 'c_1'));
    const now = Date.now();
    for (let i = 0; i < 250; i++) await redis.xadd(stream, `${now - 120_000}-${i}`, 'type', 'card.invalidated', 'data', '{}');
    for (let i = 0; i < 20; i++) await redis.xadd(stream, `${now - 30_000}-${i}`, 'type', 'card.invalidated', 'data', '{}');
    const [id] = await store.applyCardEvents([refreshed(card, now, 'v1')]);
    const ids = ((await redis.xrange(stream, '-', '+')) as Entry[]).map(([entryId]) => entryId);
    expect(ids.filter((entryId) => entryId.startsWith(`${now - 120_000}-`)).length).toBeLessThanOrEqual(150);
    expect(ids.filter((entryId) => entryId.startsWith(`${now - 30_000}-`))).toHaveLength(20);
    expect(ids.at(-1)).toBe(id);
  });

  it('replays the log into the derived keys the live writes produced, value for value', async () => {
    ctx = new TargetContext(target);
    const store = ctx.store();
    const redis = ctx.client();
    const now = Date.now();
    for (let c = 0; c < 12; c++) {
      const customer = `c_${c}`;
      await store.applyCardEvents([refreshed(ref(customer, 'alpha'), now - 5000, `a${c}`), refreshed(ref(customer, 'beta', 't_1'), now - 4000, `b${c}`)]);
      if (c % 3 === 0) await store.applyCardEvents([failed(ref(customer, 'alpha'), now - 3000, 'down')]);
      if (c % 4 === 0) await store.applyCardEvents([invalidated(ref(customer, 'beta', 't_1'), now - 2000)]);
    }
    await store.applyCardEvents([failed(ref('c_new'), now - 1000, 'never loaded')]);
    await store.applyOverrideEvent({ type: 'ttl.override_set', data: { cardKey: 'alpha', ttlSeconds: 45 } });

    const live = await snapshotDerivedKeys(redis, ctx.keys);
    const projections = Object.keys(live).filter((key) => key.includes('}:card:'));
    expect(projections).toHaveLength(25);
    expect(Object.keys(live).filter((key) => key.includes('}:components:'))).toHaveLength(24);
    expect(live[ctx.keys.ttlOverrides]).toEqual({ alpha: '45' });

    expect(await deleteAllDerivedKeys(redis, ctx.keys)).toBe(Object.keys(live).length);
    const summary = await replayEventLog({ redis, store, keys: ctx.keys });
    expect(summary).toMatchObject({ eventsRead: 24 + 4 + 3 + 1 + 1, cardsWritten: 25, cardsExpired: 0, overrides: 1, skipped: 0 });
    expect(await snapshotDerivedKeys(redis, ctx.keys)).toEqual(live);
  });

  it('replaces the derived keys of the layout before the shards on replay (an upgrade)', async () => {
    ctx = new TargetContext(target);
    const store = ctx.store();
    const redis = ctx.client();
    await store.applyCardEvents([refreshed(ref('c_1'), Date.now() - 1000, 'v1')]);
    const p = ctx.prefix;
    const old = [`${p}:{w_1:c_1}:card:alpha`, `${p}:{w_1:c_1}:cards`, `${p}:customer-index:id:c_1`, `${p}:ttl-overrides`];
    for (const key of old) await redis.set(key, 'left by the old layout');
    const live = await snapshotDerivedKeys(redis, ctx.keys);
    for (const key of old) expect(live[key], key).toBe('left by the old layout');

    const summary = await replayEventLog({ redis, store, keys: ctx.keys });
    expect(summary).toMatchObject({ eventsRead: 1, cardsWritten: 1, keysDeleted: Object.keys(live).length });
    for (const key of old) expect(await redis.exists(key), key).toBe(0);
    const rebuilt = await snapshotDerivedKeys(redis, ctx.keys);
    expect(rebuilt).toEqual(Object.fromEntries(Object.entries(live).filter(([key]) => !old.includes(key))));
  });
});
