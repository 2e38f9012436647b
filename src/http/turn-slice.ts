/**
 * How much of a queue one turn of the event loop works through. The lean path answers the
 * requests a turn has read right after that turn's I/O; a turn that answers hundreds of them (a
 * burst of new customers, each a cache read and a refresh enqueue) holds back everything else the
 * process must do meanwhile: accepting the next connections (one per listening socket and turn),
 * reading their requests, which starts their budgets, Redis replies and deadline timers. A slice
 * of about a millisecond is a dozen or more warm hits, so a warm turn still answers all it read.
 */

/** How long one turn answers read requests before it lets the event loop go round (ms). */
export const ANSWER_SLICE_MS = 1;

/**
 * Runs `work` on `items` from the front, at least one, until `sliceMs` have passed since it
 * started; returns how many it ran.
 * @param now a monotonic clock in ms (performance.now)
 */
export function runSlice<T>(items: readonly T[], work: (item: T, index: number) => void, sliceMs: number, now: () => number): number {
  const started = now();
  let done = 0;
  while (done < items.length) {
    work(items[done]!, done);
    done++;
    if (now() - started >= sliceMs) break;
  }
  return done;
}
