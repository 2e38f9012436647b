/**
 * The single-flight protocol's contract, per Redis target: one claim wins per card among racing
 * claimers, a marker goes back only to its owner, an ended job's marker is taken over once, and a
 * recorded outcome releases the job's markers (only those it still holds) with its events.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SingleFlight, refreshNotice } from '../../../src/redis/single-flight.js';
import { ref, refreshed } from './events.js';
import { redisTargets, TargetContext } from './redis-target.js';

describe.each(redisTargets())('single-flight on $name', (target) => {
  let ctx: TargetContext;
  afterEach(async () => ctx?.close());

  const cards = [ref('c_1', 'alpha'), ref('c_1', 'beta'), ref('c_1', 'gamma', 't_1')];

  it('gives each card to exactly one of many racing claimers; the others learn who holds it', async () => {
    ctx = new TargetContext(target);
    const claimers = Array.from({ length: 10 }, (_, i) => ({ owner: `job-${i}`, flight: new SingleFlight(ctx.client(), ctx.keys) }));
    // Each claimer asks for an overlapping pair of the three cards, all at once.
    const results = await Promise.all(
      claimers.map(({ owner, flight }, i) => {
        const mine = [cards[i % 3]!, cards[(i + 1) % 3]!];
        return flight.claim(mine, owner, 60_000).then((owners) => ({ owner, mine, owners }));
      }),
    );
    const holders = await new SingleFlight(ctx.client(), ctx.keys).owners(cards);
    for (const [c, card] of cards.entries()) {
      const claims = results.flatMap(({ owner, mine, owners }) => mine.flatMap((m, j) => (m === card ? [{ owner, got: owners[j] }] : [])));
      const winners = claims.filter((claim) => claim.got === '');
      expect(winners).toHaveLength(1);
      expect(holders[c]).toBe(winners[0]!.owner);
      for (const loser of claims.filter((claim) => claim.got !== '')) expect(loser.got).toBe(holders[c]);
    }
  });

  it('lets only the owner release a marker, and the marker lapses after its TTL', async () => {
    ctx = new TargetContext(target);
    const flight = new SingleFlight(ctx.client(), ctx.keys);
    expect(await flight.claim(cards, 'job-a', 60_000)).toEqual(['', '', '']);
    await flight.release(cards, 'job-b');
    expect(await flight.owners(cards)).toEqual(['job-a', 'job-a', 'job-a']);
    await flight.release(cards.slice(0, 2), 'job-a');
    expect(await flight.owners(cards)).toEqual([null, null, 'job-a']);
    const [left] = await flight.remainingMs(cards.slice(2));
    expect(left).toBeGreaterThan(55_000);
    expect(left).toBeLessThanOrEqual(60_000);

    expect(await flight.claim([ref('c_2')], 'job-short', 50)).toEqual(['']);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(await flight.claim([ref('c_2')], 'job-next', 60_000)).toEqual(['']);
  });

  it("takes over an ended job's markers once; a marker that changed hands is joined", async () => {
    ctx = new TargetContext(target);
    const flight = new SingleFlight(ctx.client(), ctx.keys);
    await flight.claim(cards, 'dead-job', 60_000);
    const [first, second] = await Promise.all([
      flight.reclaim(cards.map((card) => ({ ref: card, deadOwner: 'dead-job' })), 'job-1', 60_000),
      flight.reclaim(cards.map((card) => ({ ref: card, deadOwner: 'dead-job' })), 'job-2', 60_000),
    ]);
    const winner = first[0] === '' ? 'job-1' : 'job-2';
    expect([first, second]).toContainEqual(['', '', '']);
    expect([first, second]).toContainEqual([winner, winner, winner]);
    // A marker gone meanwhile is simply taken.
    expect(await flight.reclaim([{ ref: ref('c_9'), deadOwner: 'whoever' }], 'job-3', 60_000)).toEqual(['']);
  });

  it("records an outcome with the job's events and releases only the markers it still holds", async () => {
    ctx = new TargetContext(target);
    const flight = new SingleFlight(ctx.client(), ctx.keys);
    const store = ctx.store();
    await flight.claim(cards.slice(0, 2), 'job-a', 60_000);
    await flight.claim(cards.slice(2), 'job-other', 60_000);
    const events = [refreshed(cards[0]!, Date.now(), 'a'), refreshed(cards[1]!, Date.now(), 'b')];
    await store.recordRefreshOutcome(events, { owner: 'job-a', refs: cards }, refreshNotice(events));
    expect(await flight.owners(cards)).toEqual([null, null, 'job-other']);
    expect((await store.readStates(cards.slice(0, 2))).map((s) => s?.data?.components)).toEqual([
      [{ componentText: { text: 'a' } }],
      [{ componentText: { text: 'b' } }],
    ]);
  });

  it('keeps markers and writes nothing when the outcome cannot be recorded', async () => {
    ctx = new TargetContext(target);
    const flight = new SingleFlight(ctx.client(), ctx.keys);
    const store = ctx.store();
    const redis = ctx.client();
    await flight.claim(cards, 'job-a', 60_000);
    await redis.set(ctx.keys.eventStream(ctx.keys.shardOf('w_1', 'c_1')), 'not a stream');
    const events = [refreshed(cards[0]!, Date.now(), 'a')];
    await expect(store.recordRefreshOutcome(events, { owner: 'job-a', refs: cards }, refreshNotice(events))).rejects.toThrow(/WRONGTYPE/);
    expect(await flight.owners(cards)).toEqual(['job-a', 'job-a', 'job-a']);
    expect(await redis.exists(ctx.keys.card(cards[0]!))).toBe(0);
  });
});
