/**
 * The BullMQ workers of a process: one per upstream group, each on its own blocking connection,
 * with the group's concurrency (BullMQ's global concurrency caps it across all workers).
 */
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { KeyLayout } from '../redis/keys.js';
import { createBlockingConnection } from '../redis/connections.js';
import type { UpstreamGroup } from '../config/upstream-groups.js';
import { createRefreshProcessor, type ProcessorDeps } from './refresh-processor.js';
import { recordAbandonedJob } from './abandoned-jobs.js';
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
  readonly connection: Redis;
  readonly group: UpstreamGroup;
}

export class RefreshWorkers {
  readonly #workers: GroupWorker[];

  constructor(opts: {
    redisUrl: string;
    keys: KeyLayout;
    groups: readonly UpstreamGroup[];
    tuning: WorkerTuning;
    deps: ProcessorDeps;
    log: Logger;
  }) {
    this.#workers = opts.groups.map((group) => {
      const connection = createBlockingConnection(opts.redisUrl, opts.log, `worker:${group.name}`);
      const worker = new Worker(REFRESH_QUEUE_NAME, createRefreshProcessor(opts.deps, group), {
        connection,
        ...queueOptionsFor(opts.keys, group),
        concurrency: group.concurrency,
        lockDuration: opts.tuning.lockDurationMs,
        stalledInterval: opts.tuning.stalledIntervalMs,
        autorun: false,
      });
      worker.on('error', (err) => opts.log.warn({ err, upstream: group.name }, 'refresh worker error'));
      // A job's last failure, whatever the cause (stalled too often, a processor that threw before
      // recording anything): give its markers back and tell the requests waiting for it.
      worker.on('failed', (job, err) => {
        if (!job?.id || !job.finishedOn) return; // a retry follows: the job lives on
        recordAbandonedJob(opts.deps, job.id, job.data, err.message).then(
          (released) => {
            if (released.length === 0) return;
            opts.log.warn(
              { jobId: job.id, upstream: group.name, keys: released.map((r) => r.cardKey), customerId: released[0]!.customerId, detail: err.message },
              'refresh job ended without an outcome: recorded as failed, markers released',
            );
          },
          (recordErr: unknown) => opts.log.warn({ err: recordErr, jobId: job.id, upstream: group.name }, 'could not release the markers of a failed refresh job'),
        );
      });
      worker.on('closed', () => connection.disconnect());
      return { worker, connection, group };
    });
  }

  start(): void {
    for (const { worker } of this.#workers) {
      worker.run().catch(() => {}); // errors surface through the 'error' listener
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
    await Promise.all(this.#workers.map((w) => closeWorker(w, w.group.timeoutMs + CLOSE_MARGIN_MS)));
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
