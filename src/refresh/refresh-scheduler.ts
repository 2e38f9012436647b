/**
 * Puts refreshes on the BullMQ queues, single-flight across every process: a card whose
 * in-flight marker is held by another job is joined, not fetched again. One Queue object per
 * upstream group for the life of the process; keys bound for the same API go in one job.
 */
import { randomUUID } from 'node:crypto';
import { Job, Queue } from 'bullmq';
import type { RedisClient } from '../redis/connections.js';
import { cardRefId, type CardRef } from '../core/card-ref.js';
import { jobPriority, type RefreshTrigger, type RefreshUrgency } from '../core/refresh-trigger.js';
import type { KeyLayout } from '../redis/keys.js';
import { sameGroup, type UpstreamGroup } from '../config/upstream-groups.js';
import { REFRESH_JOB_NAME, REFRESH_QUEUE_NAME, type RefreshJobData } from './refresh-job.js';
import type { Metrics, QueueState } from '../observability/metrics.js';
import { SingleFlight } from '../redis/single-flight.js';
import type { QueueBound } from './queue-bound.js';

/** What a refresh needs to know about the request that asked for it. */
export interface RefreshContext {
  readonly workspaceId: string;
  readonly customer: RefreshJobData['customer'];
  readonly thread: RefreshJobData['thread'];
  readonly tenant: RefreshJobData['tenant'];
}

/** A card to refresh and the upstream group that serves it. */
export interface RefreshTarget {
  readonly ref: CardRef;
  readonly group: UpstreamGroup;
  /** The card's `fetchedAt` (ms) as the requester read it, null when none was cached (see RefreshJobData). */
  readonly seenFetchedAt?: number | null;
}

/** A card a `schedule` call put on a queue, and the job that holds it. */
export interface QueuedRefresh {
  readonly ref: CardRef;
  readonly jobId: string;
}

/** How a refresh is asked for: why (its events' `trigger`) and how urgent (its job priority). */
export interface ScheduleOptions {
  /** A manual reload: load even what was refreshed since the job was queued. */
  readonly force: boolean;
  /** When it was asked for (ms); cards loaded since then need no call. */
  readonly now: number;
  readonly trigger: RefreshTrigger;
  readonly urgency: RefreshUrgency;
}

/** How long a queue's count of queued warming jobs is trusted before it is read again. */
const WARMING_COUNT_MAX_AGE_MS = 500;

/** A queued job may wait this long behind others before its markers lapse and a new one may start. */
const QUEUE_WAIT_ALLOWANCE_MS = 10 * 60_000;

/** A marker is set a moment before its job is added to the queue: until then it is trusted. */
export const JOB_ADD_GRACE_MS = 5000;

/** How long a claim holds: the whole life of a job, queued and retried. */
export function claimTtlMs(group: UpstreamGroup): number {
  return QUEUE_WAIT_ALLOWANCE_MS + (group.retries + 1) * (group.timeoutMs + group.retryDelayMs);
}

/** BullMQ queue creation options shared by producers and workers. */
export function queueOptionsFor(keys: KeyLayout, group: UpstreamGroup) {
  return { prefix: keys.queuePrefix(group.name) };
}

export class RefreshScheduler {
  readonly #redis: RedisClient;
  readonly #keys: KeyLayout;
  readonly #singleFlight: SingleFlight;
  readonly #queues = new Map<string, Queue>();
  #groups: readonly UpstreamGroup[];
  readonly #metrics: Pick<Metrics, 'refreshesEnqueued' | 'warmingDropped'> | undefined;
  #maxQueuedWarming: number;
  readonly #bound: QueueBound | undefined;
  /** Per group: queued warming jobs as last read, plus those this process added since. */
  readonly #warmingQueued = new Map<string, { count: number; readAt: number; reserved: number }>();
  readonly #warmingReadings = new Map<string, Promise<void>>();
  #closed = false;

  constructor(opts: {
    redis: RedisClient;
    keys: KeyLayout;
    groups: readonly UpstreamGroup[];
    metrics?: Pick<Metrics, 'refreshesEnqueued' | 'warmingDropped'>;
    /** `warming.maxQueued`: queued warming jobs per upstream past which warming is dropped. */
    maxQueuedWarming?: number;
    /** `refresh.maxQueued`: checked after every enqueue. */
    bound?: QueueBound;
  }) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#groups = opts.groups;
    this.#metrics = opts.metrics;
    this.#maxQueuedWarming = opts.maxQueuedWarming ?? Infinity;
    this.#singleFlight = new SingleFlight(opts.redis, opts.keys);
    this.#bound = opts.bound;
    for (const group of opts.groups) this.#queues.set(group.name, this.#openQueue(group));
  }

  /**
   * A reloaded configuration's groups: a new or changed group gets a new Queue (its job options
   * follow the group's retries), a group no longer configured loses its Queue. Jobs already queued
   * stay in Redis and are processed as before.
   */
  updateGroups(groups: readonly UpstreamGroup[]): void {
    const previous = new Map(this.#groups.map((g) => [g.name, g]));
    this.#groups = groups;
    for (const group of groups) {
      const before = previous.get(group.name);
      if (before && sameGroup(before, group) && this.#queues.has(group.name)) continue;
      const old = this.#queues.get(group.name);
      this.#queues.set(group.name, this.#openQueue(group));
      old?.close().catch(() => {});
    }
    for (const [name, queue] of this.#queues) {
      if (groups.some((g) => g.name === name)) continue;
      this.#queues.delete(name);
      queue.close().catch(() => {});
    }
  }

  /** A reloaded `warming.maxQueued`: the next warming enqueue checks against it. */
  setMaxQueuedWarming(maxQueued: number): void {
    this.#maxQueuedWarming = maxQueued;
  }

  /**
   * A group's queue. BullMQ sets a Queue's connection up once (an `INFO` on the shared fail-fast
   * connection) and, when that fails, rejects every later call of that Queue. It fails when Redis
   * goes away at that moment, or when the command time-out fires while start-up keeps the event
   * loop busy (it did, every time, in a fresh `serve` process with a small budget): the process
   * then could never enqueue again. So such a Queue is replaced by a new one, which sets itself up
   * once Redis answers.
   */
  #openQueue(group: UpstreamGroup): Queue {
    const queue = new Queue(REFRESH_QUEUE_NAME, {
      connection: this.#redis,
      ...queueOptionsFor(this.#keys, group),
      defaultJobOptions: {
        attempts: group.retries + 1,
        backoff: { type: 'fixed', delay: group.retryDelayMs },
        removeOnComplete: { age: 3600, count: 1000 },
        removeOnFail: { age: 24 * 3600, count: 5000 },
      },
    });
    queue.on('error', () => {}); // the connection's own listener logs Redis errors
    queue.waitUntilReady().catch(() => {
      if (this.#closed || this.#queues.get(group.name) !== queue) return;
      this.#queues.set(group.name, this.#openQueue(group));
      queue.close().catch(() => {});
    });
    return queue;
  }

  /**
   * Enqueues a refresh for every target that no job is refreshing yet; the others are joined, and
   * a queued job of lower priority than `opts.urgency` is raised to it (SPEC 10.4). Warming past
   * `warming.maxQueued` queued jobs of the upstream is dropped (and counted).
   * Throws when Redis cannot be reached (the caller falls back to direct upstream calls).
   * @returns the cards this call put on a queue, with their jobs (the rest joined running jobs or were dropped)
   */
  async schedule(context: RefreshContext, targets: readonly RefreshTarget[], opts: ScheduleOptions): Promise<QueuedRefresh[]> {
    const byGroup = new Map<UpstreamGroup, CardRef[]>();
    const seen = new Map<CardRef, number | null>();
    for (const { ref, group, seenFetchedAt } of targets) {
      const refs = byGroup.get(group);
      if (refs) refs.push(ref);
      else byGroup.set(group, [ref]);
      if (seenFetchedAt !== undefined) seen.set(ref, seenFetchedAt);
    }
    const scheduled = await Promise.all(
      [...byGroup].map(([group, refs]) => this.#scheduleGroup(context, group, refs, seen, opts)),
    );
    return scheduled.flat();
  }

  async #scheduleGroup(context: RefreshContext, group: UpstreamGroup, refs: CardRef[], seen: ReadonlyMap<CardRef, number | null>, opts: ScheduleOptions) {
    // A request that began before a reload may name a group the reload removed: open it again.
    const queue = this.#queues.get(group.name) ?? this.#queues.set(group.name, this.#openQueue(group)).get(group.name)!;
    const warming = opts.urgency === 'warming';
    if (warming && !(await this.#reserveWarming(group, queue))) {
      this.#metrics?.warmingDropped.inc({ upstream: group.name }, refs.length);
      return [];
    }
    try {
      const claimed = await this.#claimAndAdd(context, group, queue, refs, seen, opts);
      if (warming && claimed.length === 0) this.#releaseWarming(group);
      return claimed;
    } catch (err) {
      if (warming) this.#releaseWarming(group);
      throw err;
    }
  }

  async #claimAndAdd(
    context: RefreshContext,
    group: UpstreamGroup,
    queue: Queue,
    refs: CardRef[],
    seen: ReadonlyMap<CardRef, number | null>,
    opts: ScheduleOptions,
  ): Promise<QueuedRefresh[]> {
    const jobId = randomUUID();
    const priority = jobPriority(opts.urgency);
    const ttl = claimTtlMs(group);
    const owners = await this.#singleFlight.claim(refs, jobId, ttl);
    // Only a check: when it fails (a slow moment), the running jobs are joined as before.
    const dead = await this.#deadOwners(group, refs, owners).catch(() => []);
    if (dead.length > 0) {
      // Joining a job that has ended would wait for an outcome that never comes: take its cards over.
      const reclaimed = await this.#singleFlight.reclaim(dead.map((i) => ({ ref: refs[i]!, deadOwner: owners[i]! })), jobId, ttl);
      dead.forEach((i, n) => (owners[i] = reclaimed[n]!));
    }
    const claimed = refs.filter((_, i) => owners[i] === '');
    const joined = owners.filter((owner) => owner !== '');
    if (joined.length > 0 && opts.urgency !== 'warming') await this.#raise(queue, joined, priority);
    if (claimed.length === 0) return [];
    const data: RefreshJobData = {
      workspaceId: context.workspaceId,
      customer: context.customer,
      thread: context.thread ?? null,
      tenant: context.tenant ?? null,
      cards: claimed.map((ref) => ({ cardKey: ref.cardKey, threadId: ref.threadId, ...(seen.has(ref) ? { seenFetchedAt: seen.get(ref) } : {}) })),
      force: opts.force,
      requestedAt: opts.now,
      trigger: opts.trigger,
    };
    try {
      await queue.add(REFRESH_JOB_NAME, data, { jobId, priority });
    } catch (err) {
      // Give the claims back so the next request can try again instead of waiting them out.
      await this.#singleFlight.release(claimed, jobId).catch(() => {});
      throw err;
    }
    this.#metrics?.refreshesEnqueued.inc({ upstream: group.name, trigger: opts.trigger }, claimed.length);
    void this.#bound?.check(queue, group);
    return claimed.map((ref) => ({ ref, jobId }));
  }

  /**
   * Raises queued jobs that a more urgent request joins to its priority, so that it does not wait
   * behind a flood of less urgent work. The in-flight marker names the job; a job that is already
   * running (or gone) keeps its priority, which no longer matters.
   */
  async #raise(queue: Queue, jobIds: readonly string[], priority: number): Promise<void> {
    await Promise.all([...new Set(jobIds)].map((jobId) => this.#reprioritize(queue, jobId, (current) => current > priority, priority)));
  }

  /**
   * Gives a queued job `priority` when its current one passes `when` (a job that is gone has
   * none, 0, and is left alone). Only the job's id is needed for that, so a handle is made from
   * it rather than read with `Job.fromId`, which would fetch and parse the whole job.
   */
  async #reprioritize(queue: Queue, jobId: string, when: (current: number) => boolean, priority: number): Promise<void> {
    const current = Number(await this.#redis.hget(queue.toKey(jobId), 'priority'));
    if (current === 0 || !when(current)) return;
    await new Job(queue, REFRESH_JOB_NAME, null, {}, jobId).changePriority({ priority });
  }

  /**
   * Lowers the queued refreshes of these cards from "a request is waiting" to "background" once
   * the request that waited has been answered without them (its budget ran out). Without this, a
   * storm of new customers leaves thousands of jobs at the top priority whose agents got their
   * placeholder long ago, and a new customer's first look waits behind all of them; with it, only
   * requests waiting right now are ahead (newest demand first). A request that joins such a job
   * later raises it again. Single-flight is untouched: the job and its markers stay.
   * The targets are one request's cards: one customer, so their markers share a slot (as for `schedule`).
   * @param queued what the request's own `schedule` call queued: those cards' jobs are known, not read
   */
  async lower(targets: readonly RefreshTarget[], queued: readonly QueuedRefresh[] = []): Promise<void> {
    const background = jobPriority('background');
    const waiting = jobPriority('waiting');
    const known = new Map(queued.map((q) => [cardRefId(q.ref), q.jobId]));
    // A request's cards are mostly one job: each job is looked at once, whatever its card count.
    const byGroup = new Map<string, { jobIds: Set<string>; unknown: CardRef[] }>();
    for (const { ref, group } of targets) {
      let jobs = byGroup.get(group.name);
      if (!jobs) byGroup.set(group.name, (jobs = { jobIds: new Set(), unknown: [] }));
      const jobId = known.get(cardRefId(ref));
      if (jobId === undefined) jobs.unknown.push(ref);
      else jobs.jobIds.add(jobId);
    }
    await Promise.all(
      [...byGroup].map(async ([name, { jobIds, unknown }]) => {
        const queue = this.#queues.get(name);
        if (!queue) return;
        if (unknown.length > 0) for (const owner of await this.#singleFlight.owners(unknown)) if (owner !== null) jobIds.add(owner);
        await Promise.all([...jobIds].map((jobId) => this.#reprioritize(queue, jobId, (current) => current === waiting, background)));
      }),
    );
  }

  /**
   * Takes a place for one warming job in the group's queue, or false when `warming.maxQueued` are
   * queued. The count is read from Redis at most every 500 ms and kept in between by this process
   * (a place is taken before the job is added, so concurrent calls cannot all pass one reading).
   */
  async #reserveWarming(group: UpstreamGroup, queue: Queue): Promise<boolean> {
    if (this.#maxQueuedWarming === Infinity) return true;
    const known = this.#warmingQueued.get(group.name);
    if (!known || Date.now() - known.readAt > WARMING_COUNT_MAX_AGE_MS) {
      // One reading at a time per group, shared by every call that needs it.
      let reading = this.#warmingReadings.get(group.name);
      if (!reading) {
        reading = (async () => {
          const warming = jobPriority('warming');
          const counts = await queue.getCountsPerPriority([warming]);
          // The reading counts every job added so far (a few being added right now may be missed).
          this.#warmingQueued.set(group.name, { count: counts[warming] ?? 0, readAt: Date.now(), reserved: 0 });
        })().finally(() => this.#warmingReadings.delete(group.name));
        this.#warmingReadings.set(group.name, reading);
      }
      await reading;
    }
    const queued = this.#warmingQueued.get(group.name)!;
    if (queued.count + queued.reserved >= this.#maxQueuedWarming) return false;
    queued.reserved++; // counted by this process until the next reading
    return true;
  }

  /** Gives back a place taken by `#reserveWarming` that no job used. */
  #releaseWarming(group: UpstreamGroup): void {
    const queued = this.#warmingQueued.get(group.name);
    if (queued && queued.reserved > 0) queued.reserved--;
  }

  /**
   * The indexes of markers held by a job that no longer exists or has finished (failed, removed,
   * or completed without releasing them). A marker younger than {@link JOB_ADD_GRACE_MS} is
   * trusted: its job may not be on the queue yet.
   */
  async #deadOwners(group: UpstreamGroup, refs: readonly CardRef[], owners: readonly string[]): Promise<number[]> {
    const joined = owners.flatMap((owner, i) => (owner === '' ? [] : [i]));
    if (joined.length === 0) return [];
    const queue = this.#queues.get(group.name)!;
    const distinct = [...new Set(joined.map((i) => owners[i]!))];
    const [jobs, ttls] = await Promise.all([
      Promise.all(distinct.map((owner) => this.#redis.hmget(queue.toKey(owner), 'timestamp', 'finishedOn'))),
      this.#singleFlight.remainingMs(joined.map((i) => refs[i]!)),
    ]);
    const ended = new Set(distinct.filter((_, n) => jobs[n]![0] === null || jobs[n]![1] !== null));
    const claimTtl = claimTtlMs(group);
    return joined.filter((i, n) => ended.has(owners[i]!) && claimTtl - ttls[n]! > JOB_ADD_GRACE_MS);
  }

  /** Applies each group's concurrency as BullMQ global concurrency (across all workers). */
  async applyGlobalConcurrency(): Promise<void> {
    await Promise.all(this.#groups.map((g) => this.#queues.get(g.name)!.setGlobalConcurrency(g.concurrency)));
  }

  /** Job counts for the refresh-jobs gauge. */
  async depth(): Promise<Array<{ upstream: string; state: QueueState; count: number }>> {
    const states: QueueState[] = ['waiting', 'active', 'delayed', 'failed'];
    const rows = await Promise.all(
      [...this.#queues].map(async ([name, queue]) => {
        // Every refresh job has a priority, so BullMQ keeps the waiting ones as 'prioritized'.
        const counts = await queue.getJobCounts(...states, 'prioritized');
        const count = (state: QueueState) => (counts[state] ?? 0) + (state === 'waiting' ? (counts.prioritized ?? 0) : 0);
        return states.map((state) => ({ upstream: name, state, count: count(state) }));
      }),
    );
    return rows.flat();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#queues.values()].map((q) => q.close()));
  }
}
