/**
 * What the Redis-layer contract suites run against: a target gives connected clients, a key
 * prefix of its own per test, and the number of event shards. Every suite runs once per target
 * (`describe.each(redisTargets())`): one Redis with one shard (the default layout) and with four
 * shards; a Redis Cluster target plugs in here too.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { systemClock } from '../../../src/core/clock.js';
import type { RetentionPolicy } from '../../../src/core/card-state.js';
import { CardStore } from '../../../src/redis/card-store.js';
import { keyLayout, type KeyLayout } from '../../../src/redis/keys.js';
import { deleteByPrefix, redisUrl } from '../../helpers/harness.js';

export interface RedisTarget {
  readonly name: string;
  readonly shards: number;
  /** A new connected client; the context closes it at the end of the test. */
  connect(): Redis;
  /** Deletes every key under `prefix`. */
  cleanup(client: Redis, prefix: string): Promise<void>;
}

export function redisTargets(): RedisTarget[] {
  const single = (shards: number): RedisTarget => ({
    name: `one Redis, ${shards} shard${shards === 1 ? '' : 's'}`,
    shards,
    connect: () => new Redis(redisUrl()),
    cleanup: deleteByPrefix,
  });
  return [single(1), single(4)];
}

export const RETENTION: RetentionPolicy = { staleSeconds: 3600, integrationErrorTtlSeconds: 300 };

/** One test's view of a target: a unique prefix, its key layout, clients closed and keys deleted by `close`. */
export class TargetContext {
  readonly prefix = `contract-${randomUUID().slice(0, 8)}`;
  readonly keys: KeyLayout;
  readonly #target: RedisTarget;
  readonly #clients: Redis[] = [];

  constructor(target: RedisTarget) {
    this.#target = target;
    this.keys = keyLayout(this.prefix, target.shards);
  }

  client(): Redis {
    const client = this.#target.connect();
    this.#clients.push(client);
    return client;
  }

  store(opts: { retentionSeconds?: number; client?: Redis } = {}): CardStore {
    return new CardStore({
      redis: opts.client ?? this.client(),
      keys: this.keys,
      clock: systemClock,
      retentionSeconds: opts.retentionSeconds ?? 3600,
      retentionFor: () => RETENTION,
    });
  }

  async close(): Promise<void> {
    const [first] = this.#clients;
    if (first) await this.#target.cleanup(first, this.prefix);
    for (const client of this.#clients) client.disconnect();
  }
}
