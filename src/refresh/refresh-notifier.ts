/**
 * Wakes requests that wait for a refresh. One subscriber connection per process listens on the
 * refresh channel; requests register a waiter per card before they enqueue, so no outcome is
 * missed. If a message is lost (a reconnect), the request still re-reads the cache at its
 * deadline, so the worst case is a placeholder, never a hang.
 */
import type { RedisClient } from '../redis/connections.js';
import type { Logger } from 'pino';
import { parseRefreshNotice, type RefreshOutcome } from '../redis/single-flight.js';

export type Outcome = RefreshOutcome;
type Resolve = (outcome: Outcome) => void;

export class RefreshNotifier {
  readonly #subscriber: RedisClient;
  readonly #channels: ReadonlySet<string>;
  readonly #log: Logger;
  /** Waiters per card; entries leave as soon as they are resolved or abandoned. */
  readonly #waiters = new Map<string, Set<Resolve>>();

  /** @param channels one sharded channel per event shard (`KeyLayout.refreshChannel`) */
  constructor(subscriber: RedisClient, channels: readonly string[], log: Logger) {
    this.#subscriber = subscriber;
    this.#channels = new Set(channels);
    this.#log = log;
    subscriber.on('smessage', (channel: string, message: string) => {
      if (this.#channels.has(channel)) this.#dispatch(message);
    });
  }

  /** Subscribes (ioredis re-subscribes by itself after a reconnect), one channel at a time: each is in its own slot. */
  async start(): Promise<void> {
    for (const channel of this.#channels) await this.#subscriber.ssubscribe(channel);
  }

  /** How many requests are waiting, for tests and metrics. */
  get waiting(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }

  /**
   * Waits for the outcome of `cardId`'s refresh until `signal` aborts; resolves `undefined` then.
   * Register before enqueueing the refresh.
   */
  wait(cardId: string, signal: AbortSignal): Promise<Outcome | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let set = this.#waiters.get(cardId);
      if (!set) this.#waiters.set(cardId, (set = new Set()));
      const waiters = set;
      const settle: Resolve = (outcome) => {
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = () => {
        this.#remove(cardId, waiters, settle);
        resolve(undefined);
      };
      waiters.add(settle);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #remove(cardId: string, set: Set<Resolve>, resolve: Resolve) {
    set.delete(resolve);
    if (set.size === 0 && this.#waiters.get(cardId) === set) this.#waiters.delete(cardId);
  }

  #dispatch(message: string) {
    const notice = parseRefreshNotice(message);
    if (notice === undefined) {
      this.#log.warn({ bytes: message.length }, 'ignored an unreadable refresh notice');
      return;
    }
    for (const [cardId, outcome] of notice.outcomes) {
      const set = this.#waiters.get(cardId);
      if (!set) continue;
      this.#waiters.delete(cardId);
      for (const resolve of set) resolve(outcome);
    }
  }
}
