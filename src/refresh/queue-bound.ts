/**
 * Keeps each upstream's refresh queue under `refresh.maxQueued` waiting jobs. Past the bound, the
 * waiting jobs of the lowest priority go first, the oldest of them first: warming before
 * background refreshes, and among those the ones whose requests were answered longest ago (a
 * refresh is lowered to background when its request's budget runs out, see `lower`). A dropped
 * job's markers are released and the requests still waiting for its cards told at once (a
 * `failed` notice: they fall back as SPEC 5 says), so single-flight holds and the next request for
 * such a card starts a fresh refresh.
 *
 * Cost per enqueue: one script that compares two counts (O(1)); only past the bound does it pick
 * the excess, by score range (O(log n + excess), `commands/pickExcessJobs.lua`). Never a scan of
 * the queue.
 */
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { cardRefId } from '../core/card-ref.js';
import type { UpstreamGroup } from '../config/upstream-groups.js';
import type { CardStore } from '../redis/card-store.js';
import { defineCommands, runCommand } from '../redis/commands/index.js';
import type { RedisClient } from '../redis/connections.js';
import type { Metrics } from '../observability/metrics.js';
import { RepeatedWarnings } from '../observability/repeated-warnings.js';
import { RefreshJobDataSchema } from './refresh-job.js';
import { jobCardRefs } from './refresh-processor.js';

export class QueueBound {
  readonly #redis: RedisClient;
  readonly #store: Pick<CardStore, 'inflightOwners' | 'recordRefreshOutcome'>;
  readonly #metrics: Pick<Metrics, 'refreshDropped'>;
  /** A storm drops jobs on every enqueue: one line per minute and upstream, with a count; the metric has the figures. */
  readonly #warnings: RepeatedWarnings;
  #maxQueued: number;
  /** Per group: a check running, and whether another was asked for meanwhile. */
  readonly #checks = new Map<string, { again: boolean; done: Promise<void> }>();

  constructor(opts: { redis: RedisClient; store: Pick<CardStore, 'inflightOwners' | 'recordRefreshOutcome'>; metrics: Pick<Metrics, 'refreshDropped'>; log: Logger; maxQueued: number }) {
    this.#redis = opts.redis;
    this.#store = opts.store;
    this.#metrics = opts.metrics;
    this.#warnings = new RepeatedWarnings(opts.log);
    this.#maxQueued = opts.maxQueued;
    defineCommands(this.#redis);
  }

  /** A reloaded `refresh.maxQueued`: the next enqueue checks against it. */
  setMaxQueued(maxQueued: number): void {
    this.#maxQueued = maxQueued;
  }

  /**
   * Checks the group's queue after an enqueue, in the background: one check per group at a time,
   * and one more after it when enqueues came meanwhile (so a burst costs two checks, not one each).
   * @returns when the checks asked for so far are done (tests; callers need not wait)
   */
  check(queue: Queue, group: UpstreamGroup): Promise<void> {
    const running = this.#checks.get(group.name);
    if (running) {
      running.again = true;
      return running.done;
    }
    const state = { again: false, done: Promise.resolve() };
    state.done = (async () => {
      try {
        do {
          state.again = false;
          await this.#enforce(queue, group).catch((err: unknown) => this.#warnings.warn(err, { upstream: group.name }, 'could not keep the refresh queue bounded'));
        } while (state.again);
      } finally {
        this.#checks.delete(group.name);
      }
    })();
    this.#checks.set(group.name, state);
    return state.done;
  }

  async #enforce(queue: Queue, group: UpstreamGroup): Promise<void> {
    const ids = await runCommand<string[]>(this.#redis, 'pickExcessJobs', [queue.toKey('wait'), queue.toKey('prioritized')], [String(this.#maxQueued)]);
    if (ids.length === 0) return;
    // The data first: a removed job takes it along, and it names the cards whose markers go back.
    const data = await Promise.all(ids.map((id) => this.#redis.hget(queue.toKey(id), 'data')));
    const removed = await Promise.all(ids.map((id) => queue.remove(id)));
    let cards = 0;
    await Promise.all(
      ids.map(async (jobId, i) => {
        // 0: another process dropped it first, or a worker took it meanwhile (it runs).
        if (removed[i] !== 1) return;
        cards += await this.#releaseDropped(jobId, data[i] ?? null, group);
      }),
    );
    const jobs = removed.filter((r) => r === 1).length;
    if (jobs === 0) return;
    this.#warnings.warn(
      new Error(`more than ${this.#maxQueued} refreshes waiting for ${group.name}`),
      { upstream: group.name, jobs, cards, maxQueued: this.#maxQueued },
      'refresh queue full: dropped the oldest queued refreshes of the lowest priority',
    );
  }

  /** Releases the markers a dropped job still holds and tells their waiting requests; returns how many cards it held. */
  async #releaseDropped(jobId: string, raw: string | null, group: UpstreamGroup): Promise<number> {
    const parsed = raw === null ? undefined : RefreshJobDataSchema.safeParse(safeJson(raw));
    if (!parsed?.success) return 0; // cards unknown: their markers are taken over by the next request (a dead owner)
    const refs = jobCardRefs(parsed.data);
    const owners = await this.#store.inflightOwners(refs);
    const owned = refs.filter((_, i) => owners[i] === jobId);
    this.#metrics.refreshDropped.inc({ upstream: group.name, reason: 'queue_full' }, refs.length);
    if (owned.length === 0) return refs.length;
    await this.#store.recordRefreshOutcome([], { owner: jobId, refs: owned }, { outcomes: owned.map((ref) => [cardRefId(ref), 'failed']) });
    return refs.length;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
