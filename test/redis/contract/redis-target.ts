/**
 * What the Redis-layer contract suites run against: a target gives connected clients, a key
 * prefix of its own per test, and the number of event shards. Every suite runs once per target
 * (`describe.each(redisTargets())`): one Redis with one shard (the default layout) and with four
 * shards, and the suite's 3-master Redis Cluster with 16 shards (the cluster-mode default).
 */
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { inject } from 'vitest';
import type { RedisClient } from '../../../src/redis/connections.js';
import { systemClock } from '../../../src/core/clock.js';
import type { RetentionPolicy } from '../../../src/core/card-state.js';
import { CardStore } from '../../../src/redis/card-store.js';
import { keyLayout, type KeyLayout } from '../../../src/redis/keys.js';
import { deleteByPrefix, redisUrl } from '../../helpers/harness.js';

export interface RedisTarget {
  readonly name: string;
  readonly shards: number;
  /** A new client (commands wait until it is connected); the context closes it at the end of the test. */
  connect(): RedisClient;
  /** A new client for SSUBSCRIBE (on a cluster: one subscriber per master). */
  subscriber(): RedisClient;
  /** Deletes every key under `prefix`. */
  cleanup(client: RedisClient, prefix: string): Promise<void>;
}

export function redisTargets(): RedisTarget[] {
  const single = (shards: number): RedisTarget => ({
    name: `one Redis, ${shards} shard${shards === 1 ? '' : 's'}`,
    shards,
    connect: () => new Redis(redisUrl()),
    subscriber: () => new Redis(redisUrl()),
    cleanup: deleteByPrefix,
  });
  const targets = [single(1), single(4)];
  const nodes = inject('redisClusterNodes');
  if (nodes.length > 0) {
    targets.push({
      name: `a ${nodes.length}-master Redis Cluster, 16 shards`,
      shards: 16,
      connect: () => new Cluster([...nodes]),
      subscriber: () => new Cluster([...nodes], { shardedSubscribers: true }),
      cleanup: deleteByPrefix,
    });
  }
  return targets;
}

export const RETENTION: RetentionPolicy = { staleSeconds: 3600, integrationErrorTtlSeconds: 300 };

/** One test's view of a target: a unique prefix, its key layout, clients closed and keys deleted by `close`. */
export class TargetContext {
  readonly prefix = `contract-${randomUUID().slice(0, 8)}`;
  readonly keys: KeyLayout;
  readonly #target: RedisTarget;
  readonly #clients: RedisClient[] = [];

  constructor(target: RedisTarget) {
    this.#target = target;
    this.keys = keyLayout(this.prefix, target.shards);
  }

  client(): RedisClient {
    const client = this.#target.connect();
    this.#clients.push(client);
    return client;
  }

  subscriber(): RedisClient {
    const client = this.#target.subscriber();
    this.#clients.push(client);
    return client;
  }

  store(opts: { retentionSeconds?: number; client?: RedisClient } = {}): CardStore {
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
