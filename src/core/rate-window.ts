/**
 * A per-process limit on calls to an API that limits its callers: at most `limit` calls in any
 * window of `windowMs`, and none until the time a `429` answer named. Time is passed in; memory
 * is bounded by `limit` timestamps.
 */
export class RateWindow {
  readonly #limit: number;
  readonly #windowMs: number;
  /** Start times of the calls in the current window, oldest first. */
  readonly #starts: number[] = [];
  #blockedUntil = -Infinity;

  constructor(limit: number, windowMs = 60_000) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  /** Takes one call from the budget at `now`; false when the window is full or the API asked to wait. */
  tryAcquire(now: number): boolean {
    if (now < this.#blockedUntil) return false;
    while (this.#starts.length > 0 && this.#starts[0]! <= now - this.#windowMs) this.#starts.shift();
    if (this.#starts.length >= this.#limit) return false;
    this.#starts.push(now);
    return true;
  }

  /** No call before `until` (a `429`'s reset time). */
  blockUntil(until: number): void {
    this.#blockedUntil = Math.max(this.#blockedUntil, until);
  }

  get blockedUntil(): number {
    return this.#blockedUntil;
  }
}

/** A reset further away than this is taken as this: a bogus header must not silence pushes for days. */
const MAX_RESET_WAIT_MS = 60 * 60_000;
/** Without a readable reset, wait a minute, the window Plain's limits are counted in. */
const DEFAULT_RESET_WAIT_MS = 60_000;

/**
 * When a `429`'s limit resets, from the `x-ratelimit-reset` header: an ISO time (Plain's form),
 * or seconds since the epoch. Missing or unreadable: a minute from now.
 */
export function rateLimitResetAt(now: number, header: string | null): number {
  let at = Number.NaN;
  if (header !== null && header.trim() !== '') {
    const text = header.trim();
    at = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : Date.parse(text);
  }
  if (!Number.isFinite(at)) return now + DEFAULT_RESET_WAIT_MS;
  return Math.min(Math.max(at, now), now + MAX_RESET_WAIT_MS);
}
