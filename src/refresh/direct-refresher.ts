/**
 * The fall-back while Redis is unreachable: the serving process calls the upstream itself,
 * single-flight within the process, and serves whatever arrives in time. Nothing is cached; Plain
 * caches what it is given, which protects the upstream.
 *
 * Bounded in every direction, since it runs exactly when things are going wrong: a call takes one
 * of this process's upstream slots (shared with its refresh workers, so the two together keep the
 * upstream's concurrency), the wait for a slot has a short list, and a call, its wait and its
 * retry stop as soon as no request waits for it any more (every joined request's budget is over).
 */
import type { Logger } from 'pino';
import { cardRefId, type CardRef } from '../core/card-ref.js';
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

/** One upstream call of this process and the requests that wait for it. */
interface DirectCall {
  readonly result: Promise<UpstreamResult | undefined>;
  readonly abort: AbortController;
  /** Requests waiting whose budget is not over yet. */
  waiters: number;
}

export class DirectRefresher {
  readonly #inflight = new Map<string, DirectCall>();
  readonly #slots: UpstreamSlots;
  readonly #metrics: Metrics;
  readonly #log: Logger;

  constructor(opts: { slots: UpstreamSlots; metrics: Metrics; log: Logger }) {
    this.#slots = opts.slots;
    this.#metrics = opts.metrics;
    this.#log = opts.log.child({ component: 'direct-refresh' });
  }

  /**
   * Loads the cards of one group for one customer; joins loads already running in this process.
   * @param signal aborts when the asking request stops waiting (its budget is over)
   */
  load(context: RefreshContext, group: UpstreamGroup, refs: readonly CardRef[], signal: AbortSignal): Map<string, Promise<DirectOutcome>> {
    const result = new Map<string, Promise<DirectOutcome>>();
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
      const abort = new AbortController();
      const call: DirectCall = { abort, waiters: 0, result: this.#call(context, group, missing.map((r) => r.cardKey), abort.signal) };
      joined.add(call);
      const ids = missing.map(cardRefId);
      for (const id of ids) this.#inflight.set(id, call);
      void call.result.finally(() => {
        for (const id of ids) if (this.#inflight.get(id) === call) this.#inflight.delete(id);
      });
      for (const ref of missing) result.set(ref.cardKey, call.result.then((r) => outcomeFor(r, ref.cardKey)));
    }
    for (const call of joined) this.#wait(call, signal);
    return result;
  }

  /** Counts a waiter on `call` until `signal` aborts; the last one to leave cancels the call. */
  #wait(call: DirectCall, signal: AbortSignal): void {
    if (signal.aborted) return;
    call.waiters++;
    const leave = () => {
      call.waiters--;
      if (call.waiters === 0) call.abort.abort();
    };
    signal.addEventListener('abort', leave, { once: true });
    void call.result.finally(() => signal.removeEventListener('abort', leave));
  }

  /** The call, retried as configured; undefined when abandoned or turned away. */
  async #call(context: RefreshContext, group: UpstreamGroup, keys: string[], signal: AbortSignal): Promise<UpstreamResult | undefined> {
    const target = { name: group.name, url: group.url, headers: group.headers, timeoutMs: group.timeoutMs, signingSecret: group.signingSecret };
    const call = { workspaceId: context.workspaceId, cardKeys: keys, customer: context.customer, thread: context.thread, tenant: context.tenant };
    for (let attempt = 1; ; attempt++) {
      const release = await this.#slots.acquire(group, { signal });
      if (!release) return undefined; // nobody waits any more, or too many wait already
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
