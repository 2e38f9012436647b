/**
 * How long a `/cards` request may have waited before the server read it, so that its budget can
 * count from then (SPEC 4: `budgetMs` is the longest a response may take).
 *
 * The server's own clock starts when it reads a request. Under a burst that is late: 200 new
 * connections at once kept a fresh process busy for 130 ms, and the last request read had been
 * waiting in its socket all that time. Counted from the read, its answer went out 1,060-1,080 ms
 * after Plain sent it, with a budget of 1 s. The request may have arrived as early as:
 *
 * - the start of the event loop's current busy stretch (busy-stretch.ts), and no earlier than
 * - the previous answer on the same connection (a client sends its next request after the answer).
 *
 * The later of the two is the estimate; the resolver stops waiting that much earlier (capped by
 * budget-reserve.ts). On an idle or lightly loaded process both bounds are within a millisecond or
 * two of the read.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BusyStretch } from '../core/busy-stretch.js';

/** How often the loop's idle time is sampled when no request comes (ms): the bound's slack after a quiet spell. */
const SAMPLE_EVERY_MS = 100;

const ANSWERED_AT = Symbol('cardproxy.answeredAt');
type TrackedSocket = Socket & { [ANSWERED_AT]?: number };

const nodeTiming = performance.nodeTiming;

export class RequestIntake {
  readonly #busy = new BusyStretch();
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#observe();
    this.#timer = setInterval(() => this.#observe(), SAMPLE_EVERY_MS).unref();
  }

  /** How long the request read now (`performance.now()`) on `socket` may have waited to be read (ms). */
  queuedMs(socket: Socket, now: number): number {
    const since = this.#busy.observe(now, nodeTiming.idleTime);
    const answeredAt = (socket as TrackedSocket)[ANSWERED_AT];
    return now - (answeredAt !== undefined && answeredAt > since ? answeredAt : since);
  }

  /** An answer was written on `socket`: its next request came after this. */
  answered(socket: Socket): void {
    (socket as TrackedSocket)[ANSWERED_AT] = performance.now();
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #observe(): void {
    this.#busy.observe(performance.now(), nodeTiming.idleTime);
  }
}
