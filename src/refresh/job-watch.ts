/**
 * A refresh job can vanish from its queue without any outcome: an operator's `Queue.remove`,
 * `obliterate` or `clean`, or a script of theirs. No worker ever sees it, so nothing releases its
 * cards' in-flight markers or tells the requests waiting for them, which would wait out their
 * whole budget. While requests of this process wait, the jobs holding their cards' markers are
 * looked up every {@link WATCH_INTERVAL_MS}; a job that is gone has its markers released and a
 * `failed` notice sent for its cards (the same atomic step a worker uses), so the requests fall
 * back at once as SPEC 5 says and the next request starts a fresh refresh.
 *
 * Cost: while requests wait, one GET per watched card when it starts being watched (none for a card
 * the request itself just queued: its job is known) and one EXISTS per distinct job every interval,
 * one command per key (so it works on Redis Cluster too). Nothing when nobody waits.
 * A job that has ended (completed or failed) is not this module's: its worker released its
 * markers, or its `failed` handler does (`abandoned-jobs.ts`).
 */
import type { Logger } from 'pino';
import { cardRefId, type CardRef } from '../core/card-ref.js';
import type { KeyLayout } from '../redis/keys.js';
import type { RedisClient } from '../redis/connections.js';
import type { CardStore } from '../redis/card-store.js';
import type { Metrics } from '../observability/metrics.js';
import { REFRESH_QUEUE_NAME } from './refresh-job.js';
import { claimTtlMs, JOB_ADD_GRACE_MS, type QueuedRefresh, type RefreshTarget } from './refresh-scheduler.js';

/** How often the jobs that requests wait for are looked up. */
export const WATCH_INTERVAL_MS = 500;

interface Watched {
  readonly target: RefreshTarget;
  /** Requests of this process waiting for the card. */
  count: number;
  /**
   * The job holding the card's marker, once read (null: none). Read once: it changes only when a
   * job is taken over, which the look that finds the old job gone notices.
   */
  owner?: string | null;
}

export class JobWatch {
  readonly #redis: RedisClient;
  readonly #keys: KeyLayout;
  readonly #store: Pick<CardStore, 'recordRefreshOutcome'>;
  readonly #metrics: Pick<Metrics, 'refreshDropped'>;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #watched = new Map<string, Watched>();
  /**
   * Jobs seen on their queue by an earlier look (with the look that saw them): gone now means
   * removed, however young their markers.
   */
  readonly #seen = new Map<string, number>();
  #looks = 0;
  /** Bumped when watching stops: a look still under way then must not record what it saw. */
  #epoch = 0;
  #timer: NodeJS.Timeout | undefined;
  #looking = false;

  constructor(opts: { redis: RedisClient; keys: KeyLayout; store: Pick<CardStore, 'recordRefreshOutcome'>; metrics: Pick<Metrics, 'refreshDropped'>; log: Logger; intervalMs?: number }) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#store = opts.store;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    this.#intervalMs = opts.intervalMs ?? WATCH_INTERVAL_MS;
  }

  /**
   * Watches the jobs refreshing these cards while a request waits for them.
   * @param queued the cards the request itself just put on a queue: their job is known, and on its queue
   * @returns stops watching (call it once the request stops waiting)
   */
  watch(targets: readonly RefreshTarget[], queued: readonly QueuedRefresh[] = []): () => void {
    const jobs = new Map(queued.map((q) => [cardRefId(q.ref), q.jobId]));
    const unknown: Watched[] = [];
    const entries = targets.map((target) => {
      const id = cardRefId(target.ref);
      let entry = this.#watched.get(id);
      if (entry) entry.count++;
      else this.#watched.set(id, (entry = { target, count: 1 }));
      const jobId = jobs.get(id);
      if (jobId === undefined) {
        entry.owner = undefined; // this request may wait for a newer job: read again
        unknown.push(entry);
      } else {
        entry.owner = jobId;
        this.#seen.set(this.#jobKey(target, jobId), this.#looks);
      }
      return { id, entry };
    });
    this.#timer ??= setInterval(() => void this.#look(), this.#intervalMs).unref();
    // The jobs these cards joined are on their queues by now: seen at once, a removal is found at the next look.
    if (unknown.length > 0) void this.#jobsOf(unknown).catch(() => {});
    const ids = entries.map((e) => e.id);
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      for (const id of ids) {
        const entry = this.#watched.get(id);
        if (entry && --entry.count === 0) this.#watched.delete(id);
      }
      if (this.#watched.size === 0) this.close();
    };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#seen.clear();
    this.#epoch++;
  }

  async #look(): Promise<void> {
    if (this.#looking) return; // a slow Redis: the next tick looks again
    this.#looking = true;
    try {
      await this.#releaseVanished();
    } catch (err) {
      this.#log.debug({ err }, 'could not look up the jobs requests wait for');
    } finally {
      this.#looking = false;
    }
  }

  /** The jobs holding these cards' markers (read once per card), and whether each is on its queue. */
  async #jobsOf(entries: readonly Watched[]) {
    const epoch = this.#epoch;
    await Promise.all(
      entries.map(async (entry) => {
        if (entry.owner === undefined) entry.owner = await this.#redis.get(this.#keys.inflight(entry.target.ref));
      }),
    );
    const owners = entries.map((e) => e.owner ?? null);
    const jobKeys = entries.map(({ target }, i) => (owners[i] ? this.#jobKey(target, owners[i]) : null));
    const distinct = [...new Set(jobKeys.filter((k): k is string => k !== null))];
    const exists = new Map(await Promise.all(distinct.map(async (key) => [key, (await this.#redis.exists(key)) === 1] as const)));
    const look = this.#looks;
    if (epoch === this.#epoch) for (const [key, there] of exists) if (there) this.#seen.set(key, look);
    return { owners, jobKeys, distinct, exists };
  }

  #jobKey(target: RefreshTarget, owner: string): string {
    return `${this.#keys.queuePrefix(target.group.name)}:${REFRESH_QUEUE_NAME}:${owner}`;
  }

  async #releaseVanished(): Promise<void> {
    const look = ++this.#looks;
    const entries = [...this.#watched.values()];
    const targets = entries.map((w) => w.target);
    const { owners, jobKeys, distinct, exists } = await this.#jobsOf(entries);
    // Forget jobs no watched card points to any more (seen before this look began).
    const current = new Set(distinct);
    for (const [key, at] of this.#seen) if (at < look && !current.has(key)) this.#seen.delete(key);
    // Gone: seen before, or its markers are older than the moment between a claim and its job's add.
    const candidates = targets.flatMap((target, i) => (jobKeys[i] && !exists.get(jobKeys[i]) ? [{ target, owner: owners[i]!, key: jobKeys[i], entry: entries[i]! }] : []));
    const ages = await Promise.all(
      candidates.map(async ({ target, key }) => (this.#seen.has(key) ? Infinity : claimTtlMs(target.group) - (await this.#redis.pttl(this.#keys.inflight(target.ref))))),
    );
    const gone = candidates.filter((_, n) => ages[n]! > JOB_ADD_GRACE_MS);
    const byJob = new Map<string, { owner: string; upstream: string; refs: CardRef[]; entries: Watched[] }>();
    for (const { target, owner, key, entry } of gone) {
      const job = byJob.get(key) ?? { owner, upstream: target.group.name, refs: [], entries: [] };
      job.refs.push(target.ref);
      job.entries.push(entry);
      byJob.set(key, job);
    }
    for (const job of byJob.values()) {
      const { owner, upstream } = job;
      // Only markers it still holds: a job that just completed (and was trimmed) released its own,
      // and a job taken over has a new owner, watched from the next look.
      const now = await Promise.all(job.refs.map((ref) => this.#redis.get(this.#keys.inflight(ref))));
      job.entries.forEach((entry, i) => (entry.owner = now[i]));
      const refs = job.refs.filter((_, i) => now[i] === owner);
      if (refs.length === 0) continue;
      await this.#store.recordRefreshOutcome([], { owner, refs }, { outcomes: refs.map((ref) => [cardRefId(ref), 'failed']) });
      this.#metrics.refreshDropped.inc({ upstream, reason: 'removed' }, refs.length);
      this.#log.warn({ jobId: owner, upstream, keys: refs.map((r) => r.cardKey), customerId: refs[0]!.customerId }, 'refresh job removed from its queue: markers released, waiting requests told');
    }
  }
}
