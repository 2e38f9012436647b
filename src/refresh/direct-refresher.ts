/**
 * The fall-back while Redis is unreachable: the serving process calls the upstream itself,
 * single-flight within the process, and serves whatever arrives in time. Nothing is cached; Plain
 * caches what it is given, which protects the upstream.
 *
 * Bounded in every direction, since it runs exactly when things are going wrong: a call takes one
 * of this process's upstream slots (shared with its refresh workers, so the two together keep the
 * upstream's concurrency), the wait for a slot has a short list, and a call, its wait and its
 * retry stop as soon as no request waits for it any more (every joined request's budget is over).
 * An attempt is not started at all when too little of the waiting requests' time is left for its
 * answer to arrive: a slot freed by one request at its deadline would otherwise go to a request a
 * few milliseconds from its own, and the upstream would get a call that is cancelled at once.
 */
import type { Logger } from 'pino';
import { cardRefId, type CardRef } from '../core/card-ref.js';
import type { Clock } from '../core/clock.js';
import type { UpstreamCardResult } from '../core/plain-protocol.js';
import type { UpstreamFailure } from '../core/upstream-failure.js';
import type { UpstreamGroup } from '../config/upstream-groups.js';
import type { Metrics } from '../observability/metrics.js';
import { callUpstream, type UpstreamResult } from '../upstream/upstream-client.js';
import { callOutcome } from './card-loads.js';
import type { RefreshContext } from './refresh-scheduler.js';
import type { UpstreamSlots } from './upstream-slots.js';

/** A loaded card, a failure, or undefined: abandoned (nobody waits any more) or turned away. */
export type DirectOutcome =
  | { readonly ok: true; readonly card: Extract<UpstreamCardResult, { ok: true }> }
  | { readonly ok: false; readonly failure: UpstreamFailure }
  | undefined;

/**
 * An attempt is started only with at least this long left before the last waiting request's
 * deadline: less is not enough for a legacy API's answer to come back, and a direct answer is not
 * cached, so a later one would help nobody.
 */
export const MIN_CALL_TIME_MS = 100;

/** How long a request waits: until `signal` aborts, which happens at `deadline` (clock ms) at the latest. */
export interface DirectWait {
  readonly signal: AbortSignal;
  readonly deadline: number;
  /**
   * Aborts when the cache answers again: from then on the call is not started (its requests read
   * the cache instead); a call already at the upstream goes on.
   */
  readonly cacheBack?: AbortSignal;
}

/** One upstream call of this process and the requests that wait for it. */
interface DirectCall {
  /** Set once, right after the call object exists (the call reads its own waiters and deadline). */
  result: Promise<UpstreamResult | undefined>;
  readonly abort: AbortController;
  /** Requests waiting whose budget is not over yet. */
  waiters: number;
  /** The latest deadline of the requests that joined (clock ms): past it, the answer helps nobody. */
  until: number;
  readonly cacheBack: AbortSignal | undefined;
}

export class DirectRefresher {
  readonly #inflight = new Map<string, DirectCall>();
  readonly #slots: UpstreamSlots;
  readonly #metrics: Metrics;
  readonly #clock: Clock;
  readonly #log: Logger;

  constructor(opts: { slots: UpstreamSlots; metrics: Metrics; clock: Clock; log: Logger }) {
    this.#slots = opts.slots;
    this.#metrics = opts.metrics;
    this.#clock = opts.clock;
    this.#log = opts.log.child({ component: 'direct-refresh' });
  }

  /**
   * Loads the cards of one group for one customer; joins loads already running in this process.
   * A request that has stopped waiting already starts and joins nothing.
   */
  load(context: RefreshContext, group: UpstreamGroup, refs: readonly CardRef[], wait: DirectWait): Map<string, Promise<DirectOutcome>> {
    const result = new Map<string, Promise<DirectOutcome>>();
    if (wait.signal.aborted) {
      for (const ref of refs) result.set(ref.cardKey, Promise.resolve(undefined));
      return result;
    }
    const missing: CardRef[] = [];
    const joined = new Set<DirectCall>();
    for (const ref of refs) {
      const running = this.#inflight.get(cardRefId(ref));
      if (running) {
        joined.add(running);
        result.set(ref.cardKey, running.result.then((r) => outcomeFor(r, ref.cardKey)));
      } else {
        missing.push(ref);
      }
    }
    if (missing.length > 0) {
      const call: DirectCall = { abort: new AbortController(), waiters: 0, until: wait.deadline, cacheBack: wait.cacheBack, result: Promise.resolve(undefined) };
      // The call looks at its waiters only after its first await: they are all counted by then.
      call.result = this.#call(context, group, missing.map((r) => r.cardKey), call);
      joined.add(call);
      const ids = missing.map(cardRefId);
      for (const id of ids) this.#inflight.set(id, call);
      void call.result.finally(() => {
        for (const id of ids) if (this.#inflight.get(id) === call) this.#inflight.delete(id);
      });
      for (const ref of missing) result.set(ref.cardKey, call.result.then((r) => outcomeFor(r, ref.cardKey)));
    }
    for (const call of joined) this.#wait(call, wait);
    return result;
  }

  /** Counts a waiter on `call` until its signal aborts; the last one to leave cancels the call. */
  #wait(call: DirectCall, { signal, deadline }: DirectWait): void {
    call.waiters++;
    call.until = Math.max(call.until, deadline);
    const leave = () => {
      call.waiters--;
      if (call.waiters === 0) call.abort.abort();
    };
    signal.addEventListener('abort', leave, { once: true });
    void call.result.finally(() => signal.removeEventListener('abort', leave));
  }

  /** The call, retried as configured; undefined when abandoned, turned away or out of time. */
  async #call(context: RefreshContext, group: UpstreamGroup, keys: string[], direct: DirectCall): Promise<UpstreamResult | undefined> {
    const { signal } = direct.abort;
    const target = { name: group.name, url: group.url, headers: group.headers, timeoutMs: group.timeoutMs, signingSecret: group.signingSecret };
    const call = { workspaceId: context.workspaceId, cardKeys: keys, customer: context.customer, thread: context.thread, tenant: context.tenant };
    const slotWait = direct.cacheBack ? AbortSignal.any([signal, direct.cacheBack]) : signal;
    for (let attempt = 1; ; attempt++) {
      const release = await this.#slots.acquire(group, { signal: slotWait });
      if (!release) return undefined; // nobody waits any more, the cache is back, or too many wait already
      if (slotWait.aborted || direct.until - this.#clock.now() < MIN_CALL_TIME_MS) {
        release(); // the next caller in line decides for itself
        return undefined;
      }
      let result: UpstreamResult;
      try {
        result = await callUpstream(target, call, signal);
      } finally {
        release();
      }
      if (signal.aborted) return undefined; // cancelled: not the upstream's failure
      this.#metrics.upstreamDuration.observe({ upstream: group.name, outcome: callOutcome(result, keys) }, result.durationMs / 1000);
      const retriable = !result.ok && result.failure.kind === 'retriable';
      if (!retriable || attempt > group.retries) {
        this.#log.info({ upstream: group.name, keys, attempt, ok: result.ok, durationMs: result.durationMs }, 'direct upstream call');
        return result;
      }
      if (!(await sleep(group.retryDelayMs, signal))) return undefined;
    }
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function outcomeFor(result: UpstreamResult | undefined, key: string): DirectOutcome {
  if (result === undefined) return undefined;
  if (!result.ok) return { ok: false, failure: result.failure };
  const card = result.cards.get(key);
  if (card?.ok) return { ok: true, card };
  return { ok: false, failure: { kind: 'integration', detail: card?.detail ?? `card "${key}" missing from response`, status: 200 } };
}
