/**
 * This process's share of each upstream's concurrency: at most `concurrency` calls in flight per
 * upstream group, whether a refresh worker or the Redis-down fall-back makes them, so the two
 * together never exceed the limit (across processes, only BullMQ's global concurrency, kept in
 * Redis, can hold it). Waiting is bounded: by the caller's signal, and by a short wait list.
 */
import type { UpstreamGroup } from '../config/upstream-groups.js';

/** Releases a slot; calling it again does nothing. */
export type ReleaseSlot = () => void;

interface Waiter {
  readonly grant: (release: ReleaseSlot | null) => void;
}

interface GroupSlots {
  active: number;
  readonly waiting: Waiter[];
}

export class UpstreamSlots {
  readonly #groups = new Map<string, GroupSlots>();
  readonly #maxWaiting: number;

  /** @param maxWaiting per group, how many callers may wait for a slot; more are turned away at once */
  constructor(opts: { maxWaiting: number }) {
    this.#maxWaiting = opts.maxWaiting;
  }

  /**
   * A slot of `group`'s upstream, or null when the wait list is full or `signal` aborts first.
   * The group's current `concurrency` is the limit (a reloaded config applies at once).
   * Refresh workers pass `bounded: false`: BullMQ already caps how many of them can wait.
   */
  acquire(group: UpstreamGroup, opts: { signal?: AbortSignal; bounded?: boolean } = {}): Promise<ReleaseSlot | null> {
    const { signal, bounded = true } = opts;
    let slots = this.#groups.get(group.name);
    if (!slots) this.#groups.set(group.name, (slots = { active: 0, waiting: [] }));
    const state = slots;
    if (signal?.aborted) return Promise.resolve(null);
    if (state.active < group.concurrency && state.waiting.length === 0) {
      state.active++;
      return Promise.resolve(this.#releaser(group, state));
    }
    if (bounded && state.waiting.length >= this.#maxWaiting) return Promise.resolve(null);
    return new Promise((resolve) => {
      const onAbort = () => {
        const at = state.waiting.indexOf(waiter);
        if (at !== -1) state.waiting.splice(at, 1);
        resolve(null);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      state.waiting.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Calls in flight and callers waiting, per group name (for tests and diagnostics). */
  usage(groupName: string): { active: number; waiting: number } {
    const state = this.#groups.get(groupName);
    return { active: state?.active ?? 0, waiting: state?.waiting.length ?? 0 };
  }

  #releaser(group: UpstreamGroup, state: GroupSlots): ReleaseSlot {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.active--;
      while (state.active < group.concurrency && state.waiting.length > 0) {
        state.active++;
        state.waiting.shift()!.grant(this.#releaser(group, state));
      }
    };
  }
}
