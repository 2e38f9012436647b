/**
 * The refresh-outcome notice's contract, per Redis target: a recorded outcome reaches a waiting
 * request through its shard's channel (SPUBLISH / SSUBSCRIBE), whatever the shard; a message that
 * is not a valid notice is ignored (and logged), not taken for an outcome.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cardRefId } from '../../../src/core/card-ref.js';
import { createLogger } from '../../../src/observability/logger.js';
import { RefreshNotifier } from '../../../src/refresh/refresh-notifier.js';
import { parseRefreshNotice, refreshNotice } from '../../../src/redis/single-flight.js';
import { LogSink } from '../../helpers/harness.js';
import { failed, ref, refreshed } from './events.js';
import { redisTargets, TargetContext } from './redis-target.js';

describe.each(redisTargets())('refresh notices on $name', (target) => {
  let ctx: TargetContext;
  afterEach(async () => ctx?.close());

  async function startNotifier() {
    const sink = new LogSink();
    const channels = ctx.keys.eventStreams.map((_, shard) => ctx.keys.refreshChannel(shard));
    const notifier = new RefreshNotifier(ctx.subscriber(), channels, createLogger({ destination: sink }));
    await notifier.start();
    return { notifier, sink };
  }

  it('wakes the requests waiting for each card of a recorded outcome, in every shard', async () => {
    ctx = new TargetContext(target);
    const { notifier } = await startNotifier();
    const store = ctx.store();
    const customers = ['c_1', 'c_2', 'c_3', 'c_4', 'c_5'];
    const abort = new AbortController();
    const waits = customers.map((c) => notifier.wait(cardRefId(ref(c)), abort.signal));
    const other = notifier.wait(cardRefId(ref('c_1', 'never')), abort.signal);
    expect(notifier.waiting).toBe(customers.length + 1);
    for (const [i, c] of customers.entries()) {
      const event = i % 2 === 0 ? refreshed(ref(c), Date.now(), 'v') : failed(ref(c), Date.now(), 'down');
      await store.recordRefreshOutcome([event], { owner: `job-${c}`, refs: [ref(c)] }, refreshNotice([event]));
    }
    expect(await Promise.all(waits)).toEqual(customers.map((_, i) => (i % 2 === 0 ? 'refreshed' : 'failed')));
    abort.abort();
    expect(await other).toBeUndefined();
    expect(notifier.waiting).toBe(0);
  });

  it('ignores and logs a message that is not a notice, and still delivers the next one', async () => {
    ctx = new TargetContext(target);
    const { notifier, sink } = await startNotifier();
    const card = ref('c_1');
    const channel = ctx.keys.refreshChannel(ctx.keys.shardOf('w_1', 'c_1'));
    const publisher = ctx.client();
    const waiting = notifier.wait(cardRefId(card), new AbortController().signal);
    for (const bad of ['not json', '{"outcomes":[["x","exploded"]]}', JSON.stringify({ outcomes: [[cardRefId(card)]] })]) {
      expect(parseRefreshNotice(bad)).toBeUndefined();
      await publisher.spublish(channel, bad);
    }
    await publisher.spublish(channel, JSON.stringify(refreshNotice([refreshed(card, Date.now(), 'v')])));
    expect(await waiting).toBe('refreshed');
    expect(sink.lines.filter((l) => l.msg === 'ignored an unreadable refresh notice')).toHaveLength(3);
  });
});
