/**
 * How much of a `/cards` request's budget is kept back from waiting for refreshes, so that the
 * answer still goes out within `budgetMs` (SPEC 4: "the longest a response may take").
 *
 * A waiting request stops waiting at a timer, then reads the cache once more, builds and writes its
 * answer. On an idle process that takes a millisecond or two, and a fixed 5 % of the budget covers
 * it. Under a burst it does not: the timer fires when the event loop gets round to it, and the
 * final read's reply waits for the loop too. In the cold storm of BENCHMARKS.md (200 new customers
 * at a time, budget 1 s) half the answers left 50 ms or more past their deadline, the latest 1,010-
 * 1,150 ms after arrival. So the reserve also follows how late waits have recently ended:
 * the highest such lateness, halving every `LATENESS_HALF_LIFE_MS`, is added to the fixed part,
 * and the next requests stop waiting that much earlier. A quarter of the budget at most: a process
 * that late is overloaded, and waiting less still would turn most answers into placeholders.
 *
 * Pure: times are passed in (clock milliseconds).
 */

/** The fixed part: 5 % of the budget, 25 to 100 ms (the final cache read may use half of it). */
export function baseReserveMs(budgetMs: number): number {
  return Math.min(100, Math.max(25, Math.round(budgetMs * 0.05)));
}

/** The most a request keeps back: a quarter of its budget. */
export function maxReserveMs(budgetMs: number): number {
  return Math.floor(budgetMs / 4);
}

/**
 * The reserve for a budget, given how late recent waits ended (see {@link LatenessPeak}) and how
 * long the request may have waited before it was read (`queuedMs`, http/request-intake.ts): its
 * budget counts from its arrival, which the server did not see.
 */
export function reserveMs(budgetMs: number, recentLatenessMs = 0, queuedMs = 0): number {
  return Math.min(maxReserveMs(budgetMs), baseReserveMs(budgetMs) + Math.ceil(Math.max(0, recentLatenessMs) + Math.max(0, queuedMs)));
}

/** How fast a lateness seen once stops counting: it halves every 5 s. */
export const LATENESS_HALF_LIFE_MS = 5000;

/** Below this a decayed peak counts as none. */
const NEGLIGIBLE_MS = 0.5;

/**
 * The highest lateness observed, decaying exponentially: one number and its time, whatever the
 * request rate. A higher observation replaces it; a lower one changes nothing.
 */
export class LatenessPeak {
  readonly #halfLifeMs: number;
  #peakMs = 0;
  #at = 0;

  constructor(halfLifeMs = LATENESS_HALF_LIFE_MS) {
    this.#halfLifeMs = halfLifeMs;
  }

  /** A wait that should have ended at `now - lateMs` ended (answer ready) at `now`. */
  observe(lateMs: number, now: number): void {
    if (lateMs > this.current(now)) {
      this.#peakMs = lateMs;
      this.#at = now;
    }
  }

  /** The peak as it counts at `now`. */
  current(now: number): number {
    if (this.#peakMs === 0) return 0;
    const decayed = this.#peakMs * 2 ** (-Math.max(0, now - this.#at) / this.#halfLifeMs);
    if (decayed >= NEGLIGIBLE_MS) return decayed;
    this.#peakMs = 0;
    return 0;
  }
}
