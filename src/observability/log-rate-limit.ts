/**
 * A bound on how many lines of one kind a process writes per second, so that a flood (a botched
 * secret rotation, a scanner) cannot flood the logs: past the bound, lines are dropped and counted,
 * and the next line written says how many were dropped before it.
 */
import type { Clock } from '../core/clock.js';

export class LogRateLimit {
  readonly #perSecond: number;
  readonly #clock: Clock;
  #windowStart = -Infinity;
  #written = 0;
  #dropped = 0;

  constructor(perSecond: number, clock: Clock) {
    this.#perSecond = perSecond;
    this.#clock = clock;
  }

  /**
   * Whether a line may be written now.
   * @returns the number of lines dropped since the last one written, or null: drop this one
   */
  take(): number | null {
    const now = this.#clock.now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#written = 0;
    }
    if (this.#written >= this.#perSecond) {
      this.#dropped++;
      return null;
    }
    this.#written++;
    const dropped = this.#dropped;
    this.#dropped = 0;
    return dropped;
  }
}
