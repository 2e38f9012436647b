/**
 * The fall-back while Redis is unreachable: the serving process calls the upstream itself,
 * single-flight within the process and within each group's concurrency, and serves whatever
 * arrives in time. Nothing is cached; Plain caches what it is given, which protects the upstream.
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

export type DirectOutcome =
  | { readonly ok: true; readonly card: Extract<UpstreamCardResult, { ok: true }> }
  | { readonly ok: false; readonly failure: UpstreamFailure };

/** A counting semaphore: at most `limit` upstream calls of a group in flight in this process. */
class Semaphore {
  #free: number;
  readonly #queue: Array<() => void> = [];
  constructor(limit: number) {
    this.#free = limit;
  }
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#queue.push(resolve));
    return () => {
      const next = this.#queue.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

export class DirectRefresher {
  readonly #inflight = new Map<string, Promise<DirectOutcome>>();
  readonly #semaphores = new Map<UpstreamGroup, Semaphore>();
  readonly #metrics: Metrics;
  readonly #log: Logger;

  constructor(opts: { metrics: Metrics; log: Logger }) {
    this.#metrics = opts.metrics;
    this.#log = opts.log.child({ component: 'direct-refresh' });
  }

  /** Loads the cards of one group for one customer; joins loads already running in this process. */
  load(context: RefreshContext, group: UpstreamGroup, refs: readonly CardRef[]): Map<string, Promise<DirectOutcome>> {
    const result = new Map<string, Promise<DirectOutcome>>();
    const missing: CardRef[] = [];
    for (const ref of refs) {
      const running = this.#inflight.get(cardRefId(ref));
      if (running) result.set(ref.cardKey, running);
      else missing.push(ref);
    }
    if (missing.length === 0) return result;
    const call = this.#call(context, group, missing.map((r) => r.cardKey));
    for (const ref of missing) {
      const id = cardRefId(ref);
      const outcome = call.then((r) => outcomeFor(r, ref.cardKey));
      this.#inflight.set(id, outcome);
      void outcome.finally(() => this.#inflight.delete(id));
      result.set(ref.cardKey, outcome);
    }
    return result;
  }

  async #call(context: RefreshContext, group: UpstreamGroup, keys: string[]): Promise<UpstreamResult> {
    let semaphore = this.#semaphores.get(group);
    if (!semaphore) this.#semaphores.set(group, (semaphore = new Semaphore(group.concurrency)));
    const target = { name: group.name, url: group.url, headers: group.headers, timeoutMs: group.timeoutMs, signingSecret: group.signingSecret };
    const call = { workspaceId: context.workspaceId, cardKeys: keys, customer: context.customer, thread: context.thread, tenant: context.tenant };
    for (let attempt = 1; ; attempt++) {
      const release = await semaphore.acquire();
      let result: UpstreamResult;
      try {
        result = await callUpstream(target, call);
      } finally {
        release();
      }
      this.#metrics.upstreamDuration.observe({ upstream: group.name, outcome: callOutcome(result, keys) }, result.durationMs / 1000);
      const retriable = !result.ok && result.failure.kind === 'retriable';
      if (!retriable || attempt > group.retries) {
        this.#log.info({ upstream: group.name, keys, attempt, ok: result.ok, durationMs: result.durationMs }, 'direct upstream call');
        return result;
      }
      await new Promise((resolve) => setTimeout(resolve, group.retryDelayMs));
    }
  }
}

function outcomeFor(result: UpstreamResult, key: string): DirectOutcome {
  if (!result.ok) return { ok: false, failure: result.failure };
  const card = result.cards.get(key);
  if (card?.ok) return { ok: true, card };
  return { ok: false, failure: { kind: 'integration', detail: card?.detail ?? `card "${key}" missing from response`, status: 200 } };
}
