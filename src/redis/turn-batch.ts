/**
 * The warm path's reads (and the take-over's deletes) of one event-loop turn, sent together: the
 * requests answered concurrently then share one socket write and one ioredis `Pipeline` instead of
 * one write per command, which is most of what a warm request costs besides its own HTTP I/O. The
 * wait is one `setImmediate`. Each command still has the connection's command time-out, and fails
 * on its own.
 *
 * A command that is alone in its turn (a process below saturation answers about one request per
 * turn) goes as it is, not in a one-command `Pipeline`: the bytes on the wire are the same, and the
 * `Pipeline` (which copies every script defined on the client onto itself) doubled the command's
 * own work, 35 against 19 µs in a loop; single-key requests at about one per turn cost 0.76 of
 * the CPU they did with it (BENCHMARKS.md: a lone command without a Pipeline).
 *
 * On a Redis Cluster every command goes in a `Pipeline` of its own: a pipeline must stay on one
 * node, and the turn's commands are of many customers, so of many slots. Not as it is: sent so,
 * the first cold request after a whole cluster came back got placeholders in 3 runs of 5
 * (test/integration/cluster-outage.test.ts: its refresh made no upstream call within the budget),
 * against none in 11 runs with the `Pipeline`. Why is not known yet.
 */
import type { ChainableCommander } from 'ioredis';
import { isCluster, type RedisClient } from './connections.js';

/** The commands the warm path batches. */
export type TurnCommand =
  | { readonly name: 'mgetBuffer'; readonly keys: string[] }
  | { readonly name: 'hmgetBuffer'; readonly key: string; readonly fields: string[] }
  | { readonly name: 'hdel'; readonly key: string; readonly fields: string[] };

interface Queued {
  readonly command: TurnCommand;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

export class TurnBatch {
  readonly #redis: RedisClient;
  /** This turn's commands, sent once its I/O is over (bounded by what one turn's requests ask for). */
  #queued: Queued[] = [];

  constructor(redis: RedisClient) {
    this.#redis = redis;
  }

  /** Sends `command` with the rest of this turn's; resolves with its reply. */
  send(command: TurnCommand): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#queued.push({ command, resolve, reject });
      if (this.#queued.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const queued = this.#queued;
    this.#queued = [];
    if (isCluster(this.#redis)) for (const q of queued) this.#sendPipelined([q]);
    else if (queued.length === 1) this.#sendAlone(queued[0]!);
    else this.#sendPipelined(queued);
  }

  #sendAlone({ command, resolve, reject }: Queued): void {
    let reply: Promise<unknown>;
    try {
      reply = issue(this.#redis, command);
    } catch (err) {
      reject(err);
      return;
    }
    reply.then(resolve, reject);
  }

  #sendPipelined(queued: readonly Queued[]): void {
    let exec: Promise<Array<[Error | null, unknown]> | null>;
    try {
      const pipeline = this.#redis.pipeline();
      for (const { command } of queued) issue(pipeline, command);
      exec = pipeline.exec();
    } catch (err) {
      for (const { reject } of queued) reject(err);
      return;
    }
    exec.then(
      (results) => {
        queued.forEach(({ resolve, reject }, i) => {
          const result = results?.[i];
          if (!result) reject(new Error('no reply in the pipeline'));
          else if (result[0]) reject(result[0]);
          else resolve(result[1]);
        });
      },
      (err: unknown) => {
        for (const { reject } of queued) reject(err);
      },
    );
  }
}

/** Sends `command` on a client (its reply) or queues it on a pipeline (the pipeline). */
function issue(target: RedisClient, command: TurnCommand): Promise<unknown>;
function issue(target: ChainableCommander, command: TurnCommand): ChainableCommander;
function issue(target: RedisClient | ChainableCommander, command: TurnCommand): unknown {
  // Both kinds of target have these methods; their overloads differ only in what they return.
  const on = target as ChainableCommander;
  switch (command.name) {
    case 'mgetBuffer':
      return on.mgetBuffer(command.keys);
    case 'hmgetBuffer':
      return on.hmgetBuffer(command.key, ...command.fields);
    case 'hdel':
      return on.hdel(command.key, ...command.fields);
  }
}
