/**
 * The configuration a running process uses, replaceable at run time (SIGHUP).
 *
 * One holder per process keeps the validated config with what is derived from it (card policies,
 * upstream groups). Its `policies` and `groups` are live views: whoever was handed them (the
 * resolver, the refresh processor, the admin operations, the store's retention) reads the current
 * snapshot on every call, so a reload needs no special case per field. Components that built
 * something from the config at start (queues, workers) subscribe with `onChange`.
 *
 * Some fields shape what exists for the life of the process (the listening sockets, the Redis
 * connections, the latency histogram's buckets): a reload keeps their old values and names them.
 */
import type { CardPolicy } from './card-policy.js';
import { resolveCardPolicies } from './card-policy.js';
import type { Config } from './schema.js';
import { groupUpstreams, type UpstreamGroup, type UpstreamGroups } from './upstream-groups.js';

/** Top-level fields that only a restart changes, with why. */
export const RESTART_ONLY_FIELDS = {
  listen: 'listening sockets (ports, TLS mode; certificate files are re-read on SIGHUP all the same)',
  redis: 'Redis connections and key prefix',
  budgetMs: 'the latency histogram buckets and the Redis command time-out follow it',
  admin: 'the admin routes exist or not from start',
  events: 'retention is set on the stores at start',
  worker: 'BullMQ lock and stalled-job settings of running workers',
  nearCache: 'the in-memory near cache is sized at start',
} as const satisfies Partial<Record<keyof Config, string>>;

export interface ConfigSnapshot {
  readonly config: Config;
  readonly policies: ReadonlyMap<string, CardPolicy>;
  readonly groups: UpstreamGroups;
}

export interface ReloadOutcome {
  /** Top-level fields whose new values are now in use. */
  readonly applied: string[];
  /** Top-level fields that changed in the file but keep their old values until a restart. */
  readonly needRestart: string[];
}

function snapshotOf(config: Config): ConfigSnapshot {
  return Object.freeze({ config, policies: resolveCardPolicies(config), groups: groupUpstreams(config) });
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** A `ReadonlyMap` that reads whatever map `current` returns at the time of each call. */
class LiveMap<K, V> implements ReadonlyMap<K, V> {
  readonly #current: () => ReadonlyMap<K, V>;
  constructor(current: () => ReadonlyMap<K, V>) {
    this.#current = current;
  }
  get size(): number {
    return this.#current().size;
  }
  get(key: K): V | undefined {
    return this.#current().get(key);
  }
  has(key: K): boolean {
    return this.#current().has(key);
  }
  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void): void {
    this.#current().forEach((value, key) => callback(value, key, this));
  }
  keys(): MapIterator<K> {
    return this.#current().keys();
  }
  values(): MapIterator<V> {
    return this.#current().values();
  }
  entries(): MapIterator<[K, V]> {
    return this.#current().entries();
  }
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.#current()[Symbol.iterator]();
  }
}

export class LiveConfig {
  #snapshot: ConfigSnapshot;
  readonly #listeners: Array<(snapshot: ConfigSnapshot) => void> = [];

  /** Card policies of the current configuration (a live view). */
  readonly policies: ReadonlyMap<string, CardPolicy>;
  /** Upstream groups of the current configuration (a live view). */
  readonly groups: UpstreamGroups;

  constructor(config: Config) {
    this.#snapshot = snapshotOf(config);
    this.policies = new LiveMap(() => this.#snapshot.policies);
    const current = () => this.#snapshot.groups;
    this.groups = Object.freeze({
      get groups(): readonly UpstreamGroup[] {
        return current().groups;
      },
      groupOf: (upstreamName: string) => current().groupOf(upstreamName),
    });
  }

  get config(): Config {
    return this.#snapshot.config;
  }

  get snapshot(): ConfigSnapshot {
    return this.#snapshot;
  }

  /** Called, synchronously, after every replacement. */
  onChange(listener: (snapshot: ConfigSnapshot) => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Puts a validated configuration in use, except for the restart-only fields, which keep their
   * running values.
   */
  replace(next: Config): ReloadOutcome {
    const old = this.#snapshot.config;
    const merged: Record<string, unknown> = { ...next };
    const needRestart: string[] = [];
    for (const field of Object.keys(RESTART_ONLY_FIELDS) as Array<keyof typeof RESTART_ONLY_FIELDS>) {
      if (!same(old[field], next[field])) needRestart.push(field);
      merged[field] = old[field];
    }
    const config = Object.freeze(merged) as Config;
    const fields = new Set([...Object.keys(old), ...Object.keys(next)]);
    const applied = [...fields].filter((f) => !(f in RESTART_ONLY_FIELDS) && !same(old[f as keyof Config], next[f as keyof Config]));
    this.#snapshot = snapshotOf(config);
    for (const listener of this.#listeners) listener(this.#snapshot);
    return { applied, needRestart };
  }
}
