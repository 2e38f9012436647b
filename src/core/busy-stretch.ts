/**
 * Since when, at the latest, the event loop has been busy without a break: the earliest moment a
 * request it reads now may have arrived.
 *
 * A process reads a request only when its event loop gets round to the socket. Bytes that arrive
 * while the loop waits for I/O wake it at once; bytes that arrive while it is busy wait in the
 * kernel until the loop polls again. So a request read now arrived no earlier than the end of the
 * loop's last idle moment. Node does not say when that was, only how much time the loop has spent
 * idle in all (`performance.nodeTiming.idleTime`). Between two observations `t0` and `t1` the loop
 * was busy for `(t1 - t0) - idle`, so its last idle moment ended at `t0 + idle` or later: that is
 * the bound this keeps. Observed often (every request, and a timer when there are none), it is
 * within a few milliseconds of the truth, and exact when a burst keeps the loop busy throughout: in
 * the cold storm of BENCHMARKS.md the last of 200 new connections was read 130 ms after it came in.
 *
 * Pure: times and idle totals are passed in (monotonic milliseconds).
 */
export class BusyStretch {
  #at = Number.NaN;
  #idle = 0;
  #since = 0;

  /**
   * An observation at `now`, with the loop's idle time so far. Returns since when the loop has been
   * busy without a break, at the latest (`now` itself if it was just idle).
   */
  observe(now: number, idleTotal: number): number {
    if (Number.isNaN(this.#at)) {
      // Nothing is known about the time before the first observation.
      this.#since = now;
    } else if (idleTotal > this.#idle) {
      this.#since = Math.min(now, this.#at + (idleTotal - this.#idle));
    }
    this.#at = now;
    this.#idle = idleTotal;
    return this.#since;
  }
}
