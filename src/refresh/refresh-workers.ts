/**
 * The BullMQ workers of a process: one per upstream group, each on its own blocking connection,
 * with the group's concurrency (BullMQ's global concurrency caps it across all workers).
 */
import { Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { KeyLayout } from '../redis/keys.js';
import { createBlockingConnection, type RedisClient, type RedisEndpoint } from '../redis/connections.js';
import { sameGroup, type UpstreamGroup } from '../config/upstream-groups.js';
import { createRefreshProcessor, type ProcessorDeps } from './refresh-processor.js';
import { recordAbandonedJob } from './abandoned-jobs.js';
import { RepeatedWarnings } from '../observability/repeated-warnings.js';
import { REFRESH_QUEUE_NAME } from './refresh-job.js';
import { queueOptionsFor } from './refresh-scheduler.js';

export interface WorkerTuning {
  readonly lockDurationMs: number;
  readonly stalledIntervalMs: number;
}

/** Beyond the upstream time-out, how long a graceful close may take before the connection is dropped. */
const CLOSE_MARGIN_MS = 5000;

interface GroupWorker {
  readonly worker: Worker;
  readonly connection: RedisClient;
  readonly group: UpstreamGroup;
}

export interface RefreshWorkersOptions {
  readonly redis: RedisEndpoint;
  readonly keys: KeyLayout;
  readonly groups: readonly UpstreamGroup[];
  readonly tuning: WorkerTuning;
  readonly deps: ProcessorDeps;
  readonly log: Logger;
}

export class RefreshWorkers {
  #workers: GroupWorker[];
  readonly #opts: RefreshWorkersOptions;
  #started = false;
  /** Workers of replaced groups, finishing their active jobs. */
  readonly #retiring = new Set<Promise<void>>();

  readonly #warnings: RepeatedWarnings;

  constructor(opts: RefreshWorkersOptions) {
    this.#opts = opts;
    this.#warnings = new RepeatedWarnings(opts.log);
    this.#workers = opts.groups.map((group) => this.#create(group));
  }

  #create(group: UpstreamGroup): GroupWorker {
    const { redis, keys, tuning, deps, log } = this.#opts;
    const connection = createBlockingConnection(redis, log, `worker:${group.name}`);
    const worker = new Worker(REFRESH_QUEUE_NAME, createRefreshProcessor(deps, group), {
      connection,
      ...queueOptionsFor(keys, group),
      concurrency: group.concurrency,
      lockDuration: tuning.lockDurationMs,
      stalledInterval: tuning.stalledIntervalMs,
      autorun: false,
    });
    // BullMQ repeats its connection errors on every retry while Redis is away: once a minute is enough.
    worker.on('error', (err) => this.#warnings.warn(err, { upstream: group.name }, 'refresh worker error'));
    // A job's last failure, whatever the cause (stalled too often, a processor that threw before
    // recording anything): give its markers back and tell the requests waiting for it.
    worker.on('failed', (job, err) => {
      if (!job?.id || !job.finishedOn) return; // a retry follows: the job lives on
      recordAbandonedJob(deps, job.id, job.data, err.message).then(
        (released) => {
          if (released.length === 0) return;
          log.warn(
            { jobId: job.id, upstream: group.name, keys: released.map((r) => r.cardKey), customerId: released[0]!.customerId, detail: err.message },
            'refresh job ended without an outcome: recorded as failed, markers released',
          );
        },
        (recordErr: unknown) => log.warn({ err: recordErr, jobId: job.id, upstream: group.name }, 'could not release the markers of a failed refresh job'),
      );
    });
    // The job's lock lapsed while it ran (this or another process was blocked past lockDurationMs,
    // or stopped): BullMQ runs it again, so the upstream sees the same refresh twice.
    worker.on('stalled', (jobId) => {
      deps.metrics.refreshStalled.inc({ upstream: group.name });
      log.warn({ jobId, upstream: group.name }, 'refresh job lost its lock while running: put back on the queue, it runs again');
    });
    worker.on('closed', () => connection.disconnect());
    return { worker, connection, group };
  }

  /** The workers' Redis connections, by role (`worker:<upstream>`), for the redis-up gauge. */
  connections(): Array<{ role: string; client: RedisClient }> {
    return this.#workers.map(({ group, connection }) => ({ role: `worker:${group.name}`, client: connection }));
  }

  start(): void {
    this.#started = true;
    for (const { worker } of this.#workers) {
      worker.run().catch(() => {}); // errors surface through the 'error' listener
    }
  }

  /**
   * A reloaded configuration's groups: a new or changed group gets a new worker at once; the
   * worker of a changed or removed group finishes its active jobs in the background and closes.
   * (Both may run for a moment; BullMQ's global concurrency still caps the upstream.)
   */
  updateGroups(groups: readonly UpstreamGroup[]): void {
    const keep: GroupWorker[] = [];
    const retire: GroupWorker[] = [];
    for (const current of this.#workers) (groups.some((g) => sameGroup(g, current.group)) ? keep : retire).push(current);
    const fresh = groups.filter((group) => !keep.some((w) => sameGroup(w.group, group))).map((group) => this.#create(group));
    this.#workers = [...keep, ...fresh];
    if (this.#started) for (const { worker } of fresh) worker.run().catch(() => {});
    for (const old of retire) {
      const closing = closeWorker(old, old.group.timeoutMs + CLOSE_MARGIN_MS).finally(() => this.#retiring.delete(closing));
      this.#retiring.add(closing);
    }
  }

  /**
   * Waits for active jobs to finish (each bounded by its upstream's time-out), then disconnects.
   * Without Redis, BullMQ's graceful close never ends (it waits for a reconnect that may never
   * come), and active jobs could not record their outcome anyway: then the worker closes at once
   * (or stops being waited for, when Redis goes away during the close or the bound passes), and
   * its jobs, their locks lapsed, are taken over by another worker.
   */
  async close(): Promise<void> {
    await Promise.all([...this.#workers.map((w) => closeWorker(w, w.group.timeoutMs + CLOSE_MARGIN_MS)), ...this.#retiring]);
  }
}

async function closeWorker({ worker, connection }: GroupWorker, boundMs: number): Promise<void> {
  if (connection.status !== 'ready') {
    await worker.close(true);
    connection.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  let watch: NodeJS.Timeout | undefined;
  const givenUp = new Promise<'given up'>((resolve) => {
    timer = setTimeout(() => resolve('given up'), boundMs);
    watch = setInterval(() => {
      if (connection.status !== 'ready') resolve('given up');
    }, 250);
  });
  try {
    const outcome = await Promise.race([worker.close().then(() => 'closed' as const), givenUp]);
    if (outcome === 'given up') connection.disconnect();
  } finally {
    clearTimeout(timer);
    clearInterval(watch);
  }
}
