/**
 * The `/cards` use case: the only place that sequences I/O for a request. It reads the cache in
 * one round trip, applies the pure resolution policy per key, enqueues refreshes, waits for the
 * ones it must within the budget, and falls back to direct upstream calls when Redis is gone.
 */
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { cardRefFor, cardRefId, type CardRef } from '../core/card-ref.js';
import { MAX_CARD_KEYS, type CardsRequest } from '../core/plain-protocol.js';
import { effectiveTtlSeconds } from '../core/effective-ttl.js';
import {
  answerAfterRefresh,
  isManualReload,
  lookupCard,
  plainCopyExpiresAt,
  type AnswerSource,
  type CardAnswer,
  type Lookup,
  type LookupKind,
} from '../core/card-resolution.js';
import type { CardState, ServedCardState, ServedComponents } from '../core/card-state.js';
import { awaitsPushReload, servedKindOf, type ServedMarker } from '../core/served-marker.js';
import type { ServedEntry } from '../redis/served-markers.js';
import type { CardPolicy } from '../config/card-policy.js';
import type { UpstreamGroup, UpstreamGroups } from '../config/upstream-groups.js';
import type { CardStore } from '../redis/card-store.js';
import type { Metrics } from '../observability/metrics.js';
import type { RefreshNotifier } from '../refresh/refresh-notifier.js';
import type { QueuedRefresh, RefreshContext, RefreshScheduler, RefreshTarget } from '../refresh/refresh-scheduler.js';
import type { DirectOutcome, DirectRefresher } from '../refresh/direct-refresher.js';
import type { JobWatch } from '../refresh/job-watch.js';
import type { CacheHealth } from './cache-health.js';
import { RepeatedWarnings } from '../observability/repeated-warnings.js';
import { baseReserveMs, LatenessPeak, reserveMs } from '../core/budget-reserve.js';

/** One card of the response to Plain. */
export interface PlainCard {
  readonly key: string;
  readonly timeToLiveSeconds: number;
  /** Components answered from the cache may be passed through as the store keeps them. */
  readonly components: ServedComponents;
}

/** How one requested key was answered, for the request's log line. */
export interface KeyOutcome {
  readonly key: string;
  readonly result: LookupKind | 'unknown';
  readonly source: AnswerSource | null;
  readonly ms: number;
}

export interface Resolution {
  readonly cards: PlainCard[];
  readonly outcomes: KeyOutcome[];
  /** True when Redis could not be used and upstreams were called directly. */
  readonly degraded: boolean;
}

export interface ResolverDeps {
  readonly store: CardStore;
  readonly scheduler: RefreshScheduler;
  readonly notifier: RefreshNotifier;
  readonly direct: DirectRefresher;
  /** Tells waiting requests at once when the job they wait for vanishes from its queue. */
  readonly jobWatch?: JobWatch;
  /** Whether Redis answers; absent: a request in the fall-back never reads the cache again. */
  readonly health?: CacheHealth;
  readonly policies: ReadonlyMap<string, CardPolicy>;
  readonly groups: UpstreamGroups;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly budgetMs: number;
}

/**
 * A request's budget: aborts at `deadline` (clock ms) unless cleared. Each card the request waits
 * for listens to it once at most (its refresh's outcome; with Redis gone, the upstream call it is
 * in), and the request itself once: past Node's default of 10 listeners (a request may ask for 25
 * cards), Node would write a warning to stderr, outside the JSON log, for every such request.
 */
function budgetUntil(deadline: number, clock: Clock): { budget: AbortController; timer: NodeJS.Timeout } {
  const budget = new AbortController();
  setMaxListeners(MAX_CARD_KEYS + 1, budget.signal);
  const timer = setTimeout(() => budget.abort(), Math.max(0, deadline - clock.now()));
  return { budget, timer };
}

interface Item {
  readonly key: string;
  readonly policy: CardPolicy;
  readonly ref: CardRef;
  readonly group: UpstreamGroup;
  /** The thread of the request (the card's own `ref.threadId` is null for customer scope). */
  readonly contextThreadId: string | null;
  /** The request context's served-marker hash (`KeyLayout.served`), the same for all of a request's items. */
  readonly servedHash: string;
}

export class CardResolver {
  readonly #d: ResolverDeps;

  /** Redis faults repeat on every request while they last: written once a minute, with a count. */
  readonly #warnings: RepeatedWarnings;

  /** How late recent waits ended past their deadline (budget-reserve.ts): later requests stop that much earlier. */
  readonly #lateness = new LatenessPeak();

  constructor(deps: ResolverDeps) {
    this.#d = deps;
    this.#warnings = new RepeatedWarnings(deps.log);
  }

  /**
   * Answers one `/cards` request within the budget: synchronously (no promise) when everything
   * it needs is in the near cache and no card must be waited for, else through a promise.
   * @param receivedAt when the request was read (the budget counts from there)
   * @param queuedMs how long it may have waited before that (the budget counts from then too, at most
   *   a quarter of it: budget-reserve.ts)
   */
  resolve(workspaceId: string, request: CardsRequest, receivedAt: number, queuedMs = 0): Resolution | Promise<Resolution> {
    const d = this.#d;
    const keys = distinct(request.cardKeys);
    const customerId = request.customer.id;
    const contextThreadId = request.thread?.id ?? null;
    const context: RefreshContext = { workspaceId, customer: request.customer, thread: request.thread ?? null, tenant: request.tenant ?? null };
    const refContext = { workspaceId, customerId, threadId: contextThreadId };
    const outcomes: KeyOutcome[] = [];
    const items: Item[] = [];
    const refs: CardRef[] = [];
    const servedHash = d.store.keys.served(workspaceId, customerId, contextThreadId);
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      const policy = d.policies.get(key);
      if (!policy) {
        d.metrics.unknownCardKeys.inc();
        outcomes.push({ key, result: 'unknown', source: null, ms: 0 });
        continue;
      }
      const ref = cardRefFor(policy.scope, refContext, key);
      items.push({ key, policy, ref, group: d.groups.groupOf(policy.upstream), contextThreadId, servedHash });
      refs.push(ref);
    }
    if (outcomes.length > 0) d.log.warn({ unknownKeys: outcomes.map((o) => o.key) }, 'requested card keys are not configured');
    if (items.length === 0) return { cards: [], outcomes, degraded: false };

    const readAt = d.clock.now();
    // Only a single-key request can be a manual reload: only then must its served marker be
    // read from Redis (any process may have answered it last).
    const readMarkers = keys.length === 1;
    // A warm multi-key request is answered from the near cache without waiting for anything: then
    // this whole method runs synchronously (the HTTP layer answers such a request at once).
    const near = d.store.readNear(refs, servedHash, readMarkers);
    if (near !== undefined) return this.#afterRead(context, keys.length, items, outcomes, near, receivedAt, queuedMs, readAt);
    return this.#readAndResolve(context, keys.length, items, outcomes, refs, servedHash, readMarkers, receivedAt, queuedMs, readAt);
  }

  async #readAndResolve(
    context: RefreshContext,
    keyCount: number,
    items: readonly Item[],
    outcomes: KeyOutcome[],
    refs: readonly CardRef[],
    servedHash: string,
    readMarkers: boolean,
    receivedAt: number,
    queuedMs: number,
    readAt: number,
  ): Promise<Resolution> {
    const d = this.#d;
    let read: Awaited<ReturnType<CardStore['readForRequest']>>;
    try {
      read = await d.store.readForRequest(refs, servedHash, readMarkers, context.thread?.id ?? null);
    } catch (err) {
      this.#warnings.warn(err, {}, 'cache unreachable: calling upstreams directly');
      d.health?.markDown();
      const direct = await this.#resolveDirect(context, items, items, this.#deadline(receivedAt, queuedMs), d.health?.back);
      const answers = items.map((item) => direct.get(item.key)!);
      return this.#finish(items, answers, items.map(() => 'miss' as const), outcomes, receivedAt, { degraded: true, read: undefined });
    }
    return this.#afterRead(context, keyCount, items, outcomes, read, receivedAt, queuedMs, readAt);
  }

  #deadline(receivedAt: number, queuedMs: number): number {
    return receivedAt + this.#d.budgetMs - this.reserveMs(this.#d.clock.now(), queuedMs);
  }

  /** How long the final cache read after a wait ending at `deadline` may take: half the fixed reserve past it, no more. */
  #finalReadMs(deadline: number): number {
    return deadline + baseReserveMs(this.#d.budgetMs) / 2 - this.#d.clock.now();
  }

  /** What a request that waits now keeps back from its budget (ms): a fixed part, recent lateness and its own time before it was read. */
  reserveMs(now: number, queuedMs = 0): number {
    return reserveMs(this.#d.budgetMs, this.#lateness.current(now), queuedMs);
  }

  /** Resolution once the cache was read: synchronous unless a card must be waited for. */
  #afterRead(
    context: RefreshContext,
    keyCount: number,
    items: readonly Item[],
    outcomes: KeyOutcome[],
    read: { states: (ServedCardState | undefined)[]; served: (ServedMarker | null)[] },
    receivedAt: number,
    queuedMs: number,
    readAt: number,
  ): Resolution | Promise<Resolution> {
    const d = this.#d;
    const now = d.clock.now();
    // One pass over the keys; a subset is made only for a key that belongs to it (on a warm hit, none).
    const n = items.length;
    const answers = new Array<CardAnswer | undefined>(n);
    const kinds = new Array<LookupKind>(n);
    let toRefresh: Item[] | undefined;
    let waiting: Item[] | undefined;
    let ahead: Item[] | undefined;
    for (let i = 0; i < n; i++) {
      const item = items[i]!;
      const lookup = lookupCard(now, read.states[i], item.policy, isManualReload(now, keyCount, read.served[i]?.until ?? null));
      kinds[i] = lookup.kind;
      answers[i] = 'answer' in lookup ? lookup.answer : undefined;
      if (lookup.kind === 'stale' || lookup.kind === 'miss' || lookup.kind === 'reload') (toRefresh ??= []).push(item);
      if (answers[i] === undefined) (waiting ??= []).push(item);
      if (isRefreshAhead(lookup)) (ahead ??= []).push(item);
    }
    const force = kinds.includes('reload');
    // Each target carries the card as read (`targetsAsRead`), so a job that finds it loaded since makes no call.
    if (ahead !== undefined) {
      // Fresh, but inside the lead: refresh before it expires, behind every waiting request.
      d.scheduler
        .schedule(context, targetsAsRead(ahead, items, read.states), { force: false, now: readAt, trigger: 'ahead', urgency: 'warming' })
        .catch((err: unknown) => this.#warnings.warn(err, {}, 'could not enqueue refresh-ahead'));
    }

    if (toRefresh !== undefined && waiting === undefined) {
      // Only stale cards: answer now, refresh in the background.
      d.scheduler
        .schedule(context, targetsAsRead(toRefresh, items, read.states), { force, now: readAt, trigger: force ? 'reload' : 'request', urgency: 'background' })
        .catch((err: unknown) => this.#warnings.warn(err, {}, 'could not enqueue background refresh'));
    }
    if (waiting === undefined) return this.#finish(items, answers as CardAnswer[], kinds, outcomes, receivedAt, { degraded: false, read });
    return (async () => {
      await this.#takeOverPushReloads(items, waiting, read.served, now);
      const waited = await this.#refreshAndWait(context, targetsAsRead(toRefresh ?? [], items, read.states), waiting, force, readAt, this.#deadline(receivedAt, queuedMs));
      waiting.forEach((item) => (answers[items.indexOf(item)] = waited.answers.get(item.key)));
      return this.#finish(items, answers as CardAnswer[], kinds, outcomes, receivedAt, { degraded: waited.degraded, read });
    })();
  }

  /**
   * This answer is about to replace Plain's placeholder or error copy in this context (a manual
   * reload of it, mostly), so the worker that lands the card must not push a reload for that
   * copy as well: Plain's follow-up would then meet this answer's marker and be taken for a manual
   * reload. The marker goes before the refresh is enqueued; this answer writes its own.
   */
  async #takeOverPushReloads(items: readonly Item[], waiting: readonly Item[], served: (ServedMarker | null)[], now: number): Promise<void> {
    const at = waiting.map((item) => items.indexOf(item)).filter((i) => awaitsPushReload(now, served[i] ?? null));
    if (at.length === 0) return;
    try {
      // A request's items share one context, so one marker hash.
      await this.#d.store.forgetServed(items[0]!.servedHash, at.map((i) => items[i]!.key));
      for (const i of at) served[i] = null;
    } catch (err) {
      this.#warnings.warn(err, {}, 'could not take over served markers');
    }
  }

  /** Enqueues the refreshes and waits for the cards that need them, until the deadline. */
  async #refreshAndWait(
    context: RefreshContext,
    toRefresh: readonly RefreshTarget[],
    waiting: readonly Item[],
    force: boolean,
    readAt: number,
    deadline: number,
  ): Promise<{ answers: Map<string, CardAnswer>; degraded: boolean }> {
    const d = this.#d;
    const { budget, timer } = budgetUntil(deadline, d.clock);
    let unwatch: (() => void) | undefined;
    let queued: QueuedRefresh[] = [];
    try {
      // Register before enqueueing, so an outcome announced at once is not missed.
      const waits = waiting.map((item) => d.notifier.wait(cardRefId(item.ref), budget.signal));
      try {
        queued = await d.scheduler.schedule(context, toRefresh, { force, now: readAt, trigger: force ? 'reload' : 'request', urgency: 'waiting' });
        unwatch = d.jobWatch?.watch(targetsOf(waiting), queued);
      } catch (err) {
        this.#warnings.warn(err, {}, 'could not enqueue refresh: calling upstreams directly');
        budget.abort();
        await Promise.all(waits);
        return { answers: await this.#resolveDirect(context, waiting, waiting, deadline), degraded: true };
      }
      const outcomes = await Promise.all(waits);
      let states: (CardState | undefined)[] = [];
      try {
        states = (await withinMs(d.store.readStates(waiting.map((i) => i.ref)), this.#finalReadMs(deadline))) ?? [];
      } catch (err) {
        this.#warnings.warn(err, {}, 'cache unreachable after refresh');
      }
      const now = d.clock.now();
      // Ended by the deadline: how late, final read included, is what the next requests keep back.
      if (budget.signal.aborted) this.#lateness.observe(now - deadline, now);
      const answers = new Map<string, CardAnswer>();
      const givenUp: Item[] = [];
      waiting.forEach((item, i) => {
        const outcome = outcomes[i] ?? 'pending';
        if (outcome === 'pending') {
          d.metrics.budgetExhausted.inc({ card_key: item.key });
          givenUp.push(item);
        }
        answers.set(item.key, answerAfterRefresh(now, states[i], item.policy, outcome));
      });
      if (givenUp.length > 0) {
        // Nobody waits for these any more: behind every request that does (newest demand first).
        d.scheduler.lower(targetsOf(givenUp), queued).catch((err: unknown) => this.#warnings.warn(err, {}, 'could not lower refresh priority'));
      }
      return { answers, degraded: false };
    } finally {
      clearTimeout(timer);
      unwatch?.();
    }
  }

  /**
   * Redis is gone: call the upstreams from this process and serve what arrives in time.
   * @param cacheBack aborts when Redis answers again: calls not started by then are not, and their
   *   requests are answered from the cache (a refresh queued for what it does not hold fresh)
   */
  async #resolveDirect(context: RefreshContext, all: readonly Item[], load: readonly Item[], deadline: number, cacheBack?: AbortSignal): Promise<Map<string, CardAnswer>> {
    const d = this.#d;
    const byGroup = new Map<UpstreamGroup, Item[]>();
    for (const item of load) byGroup.set(item.group, [...(byGroup.get(item.group) ?? []), item]);
    // At the deadline this request stops waiting, and calls nobody else waits for are cancelled.
    const { budget, timer } = budgetUntil(deadline, d.clock);
    const pending = new Map<string, Promise<DirectOutcome>>();
    for (const [group, items] of byGroup) {
      for (const [key, outcome] of d.direct.load(context, group, items.map((i) => i.ref), { signal: budget.signal, deadline, cacheBack })) pending.set(key, outcome);
    }
    const expired = new Promise<undefined>((resolve) => budget.signal.addEventListener('abort', () => resolve(undefined), { once: true }));
    try {
      const settled = await Promise.all(all.map((item) => Promise.race([pending.get(item.key)!, expired])));
      const turnedAway = all.filter((_, i) => settled[i] === undefined);
      const fromCache = cacheBack?.aborted && !budget.signal.aborted && turnedAway.length > 0 ? await this.#readRecovered(context, turnedAway, deadline) : undefined;
      const answers = new Map<string, CardAnswer>();
      all.forEach((item, i) => answers.set(item.key, fromCache?.get(item.key) ?? directAnswer(item, settled[i], d)));
      return answers;
    } finally {
      clearTimeout(timer);
      budget.abort();
    }
  }

  /**
   * Redis answers again while these cards' upstream calls had not started: what the cache holds
   * (fresh, or stale within its window), and a refresh queued for every card it holds no fresh copy
   * of. Cards it does not hold are left out (the caller answers their placeholder).
   */
  async #readRecovered(context: RefreshContext, items: readonly Item[], deadline: number): Promise<Map<string, CardAnswer>> {
    const d = this.#d;
    const answers = new Map<string, CardAnswer>();
    const states = await withinMs(d.store.readStates(items.map((i) => i.ref)), this.#finalReadMs(deadline)).catch(() => undefined);
    if (!states) return answers;
    const now = d.clock.now();
    items.forEach((item, i) => {
      const answer = answerAfterRefresh(now, states[i], item.policy, 'pending');
      if (answer.source !== 'placeholder') answers.set(item.key, answer);
    });
    const stale = items.filter((item) => answers.get(item.key)?.source !== 'cache');
    if (stale.length > 0) {
      d.scheduler
        .schedule(context, targetsAsRead(stale, items, states), { force: false, now, trigger: 'request', urgency: 'background' })
        .catch((err: unknown) => this.#warnings.warn(err, {}, 'could not enqueue background refresh'));
    }
    return answers;
  }

  #finish(
    items: readonly Item[],
    answers: readonly CardAnswer[],
    kinds: readonly LookupKind[],
    outcomes: KeyOutcome[],
    receivedAt: number,
    opts: {
      degraded: boolean;
      /** What the request read first: served markers already right are not written again. */
      read: { states: readonly (ServedCardState | undefined)[]; served: readonly (ServedMarker | null)[] } | undefined;
    },
  ): Resolution {
    const d = this.#d;
    const now = d.clock.now();
    const cards = new Array<PlainCard>(items.length);
    // The served markers that change, with their cards (on a warm multi-key hit, none).
    let served: ServedEntry[] | undefined;
    let servedRefs: CardRef[] | undefined;
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const answer = answers[i]!;
      const kind = kinds[i]!;
      cards[i] = { key: item.key, timeToLiveSeconds: answer.ttlSeconds, components: answer.components };
      const freshData = kind === 'fresh' ? (opts.read?.states[i]?.data ?? undefined) : undefined;
      const until = plainCopyExpiresAt(now, answer, freshData, item.policy.refreshAhead);
      const servedKind = servedKindOf(answer.source);
      const before = opts.read?.served[i];
      if (before?.until !== until || before.kind !== servedKind) {
        (served ??= []).push({
          hash: item.servedHash,
          workspaceId: item.ref.workspaceId,
          customerId: item.ref.customerId,
          contextThreadId: item.contextThreadId,
          cardKey: item.key,
          marker: { until, kind: servedKind },
        });
        (servedRefs ??= []).push(item.ref);
      }
      d.metrics.recordCard(item.key, kind, answer.source);
      outcomes.push({ key: item.key, result: kind, source: answer.source, ms: now - receivedAt });
    }
    if (!opts.degraded && served !== undefined) {
      const count = served.length;
      d.store.markServed(served, servedRefs).catch((err: unknown) => {
        // A lost marker only misses one manual reload or push reload, so the answer stands.
        d.metrics.servedMarkersLost.inc(count);
        this.#warnings.warn(err, {}, 'could not record served cards');
      });
    }
    if (opts.degraded) d.metrics.degradedAnswers.inc();
    return { cards, outcomes, degraded: opts.degraded };
  }
}

/** `keys` without repeats, first occurrence kept: `keys` itself when it has none (the usual case). */
function distinct(keys: readonly string[]): readonly string[] {
  for (let i = 1; i < keys.length; i++) {
    if (keys.lastIndexOf(keys[i]!, i - 1) !== -1) return [...new Set(keys)];
  }
  return keys;
}

function isRefreshAhead(lookup: Lookup): boolean {
  return lookup.kind === 'fresh' && lookup.refreshAhead === true;
}

/** The items as refresh targets. */
function targetsOf(items: readonly Item[]): RefreshTarget[] {
  return items.map((item) => ({ ref: item.ref, group: item.group }));
}

/**
 * `subset` of `items` as refresh targets, each with the `fetchedAt` its card had in `states` (read
 * for `items`, in their order; null when nothing was cached).
 */
function targetsAsRead(subset: readonly Item[], items: readonly Item[], states: readonly ({ readonly data: { readonly fetchedAt: number } | null } | undefined)[]): RefreshTarget[] {
  return subset.map((item) => ({ ref: item.ref, group: item.group, seenFetchedAt: states[items.indexOf(item)]?.data?.fetchedAt ?? null }));
}

function directAnswer(item: Item, outcome: DirectOutcome | undefined, d: ResolverDeps): CardAnswer {
  const policy = item.policy;
  if (outcome === undefined) {
    d.metrics.budgetExhausted.inc({ card_key: item.key });
    return { source: 'placeholder', ttlSeconds: policy.placeholderTtlSeconds, components: policy.placeholder };
  }
  if (outcome.ok) {
    const ttl = effectiveTtlSeconds(null, outcome.card.timeToLiveSeconds, policy.ttlSeconds);
    return { source: 'refreshed', ttlSeconds: Math.max(1, ttl), components: outcome.card.components };
  }
  const ttl = outcome.failure.kind === 'integration' ? policy.integrationErrorTtlSeconds : policy.placeholderTtlSeconds;
  return { source: 'error', ttlSeconds: ttl, components: policy.errorComponents };
}

/** Resolves with `promise`'s value, or with undefined once `ms` have passed (at least 1 ms). */
async function withinMs<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, Math.max(1, ms), undefined)));
  promise.catch(() => {}); // a rejection after the time is up has nobody left to tell
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
