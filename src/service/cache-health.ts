/**
 * Whether the cache answers, as the serving path sees it. A failed read marks it down; while it is
 * down, one PING every {@link PROBE_INTERVAL_MS} (shared by every request) finds the moment it
 * answers again. Then the Redis-down fall-back stops starting upstream calls: the requests still
 * waiting for one read the cache instead, which by then may hold their cards (a hang of a few
 * seconds loses nothing), and calls queued for a slot would otherwise go on for seconds after
 * Redis came back.
 */
import type { RedisClient } from '../redis/connections.js';

/** How often a down cache is asked whether it answers again. */
export const PROBE_INTERVAL_MS = 250;

export class CacheHealth {
  readonly #redis: Pick<RedisClient, 'ping'>;
  /** Aborted when the cache answers again; a new one for each outage. */
  #back = new AbortController();
  #down = false;
  #closed = false;

  constructor(redis: Pick<RedisClient, 'ping'>) {
    this.#redis = redis;
    this.#back.abort(); // up at start
  }

  get down(): boolean {
    return this.#down;
  }

  /** Aborts once the cache answers again (already aborted while it is up). */
  get back(): AbortSignal {
    return this.#back.signal;
  }

  /** A read failed: down until a PING answers. */
  markDown(): void {
    if (this.#down) return;
    this.#down = true;
    this.#back = new AbortController();
    void this.#probe();
  }

  /** Stops probing (process shutdown). */
  close(): void {
    this.#closed = true;
  }

  async #probe(): Promise<void> {
    while (this.#down && !this.#closed) {
      await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS).unref());
      // The connection's own command time-out bounds a PING to a hung Redis.
      if ((await this.#redis.ping().catch(() => '')) === 'PONG') {
        this.#down = false;
        this.#back.abort();
      }
    }
  }
}
