/**
 * The BullMQ workers of a process: one per upstream group, each on its own blocking connection,
 * with the group's concurrency (BullMQ's global concurrency caps it across all workers).
 */
import { Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { KeyLayout } from '../redis/keys.js';
import { createBlockingConnection } from '../redis/connections.js';
import type { UpstreamGroup } from '../config/upstream-groups.js';
import { createRefreshProcessor, type ProcessorDeps } from './refresh-processor.js';
import { REFRESH_QUEUE_NAME } from './refresh-job.js';
import { queueOptionsFor } from './refresh-scheduler.js';

export interface WorkerTuning {
  readonly lockDurationMs: number;
  readonly stalledIntervalMs: number;
}

export class RefreshWorkers {
  readonly #workers: Worker[];

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
      worker.on('closed', () => connection.disconnect());
      return worker;
    });
  }

  start(): void {
    for (const worker of this.#workers) {
      worker.run().catch(() => {}); // errors surface through the 'error' listener
    }
  }

  /** Waits for active jobs to finish (each bounded by its upstream's time-out), then disconnects. */
  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.close()));
  }
}
