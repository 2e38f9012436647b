/**
 * What a worker does with one refresh job: call the upstream once for the job's cards, and record
 * the outcome as events (which update the cache and wake waiting requests). Retriable failures are
 * thrown so BullMQ retries them after the group's delay; integration errors are never retried.
 */
import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { cardRefId, type CardRef } from '../core/card-ref.js';
import type { CardPolicy } from '../config/card-policy.js';
import type { UpstreamGroup } from '../config/upstream-groups.js';
import type { CardStore } from '../redis/card-store.js';
import { refreshNotice } from '../redis/single-flight.js';
import type { Metrics } from '../observability/metrics.js';
import type { PushReloads } from '../plain/push-reloads.js';
import { callUpstream } from '../upstream/upstream-client.js';
import { callOutcome, eventsForResult, type LoadContext } from './card-loads.js';
import { RefreshJobDataSchema, type RefreshJobData } from './refresh-job.js';
import type { UpstreamSlots } from './upstream-slots.js';

export interface ProcessorDeps {
  readonly store: CardStore;
  readonly policies: ReadonlyMap<string, CardPolicy>;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** This process's upstream slots, shared with the Redis-down fall-back (absent: BullMQ's limit only). */
  readonly slots?: UpstreamSlots;
  /** Set when `plain.api.pushReload` is on: told about every card this worker lands with data. */
  readonly pushReloads?: Pick<PushReloads, 'cardsLanded'>;
}

export function createRefreshProcessor(deps: ProcessorDeps, group: UpstreamGroup) {
  const { store, policies, metrics } = deps;
  const log = deps.log.child({ component: 'refresh-worker', upstream: group.name });

  return async function processRefresh(job: Job): Promise<void> {
    const parsed = RefreshJobDataSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid refresh job data: ${parsed.error.message}`);
    const data = parsed.data;
    const owner = job.id!;
    const all = jobCardRefs(data);
    // Cards whose config disappeared (a redeploy) are dropped; their markers still go back.
    const refs = all.filter((ref) => policies.get(ref.cardKey)?.upstream !== undefined);
    const release = { owner, refs: all };

    // A card loaded since this job was queued (by a job whose markers had lapsed) needs no call.
    const toLoad = data.force ? refs : await skipFreshlyLoaded(store, refs, data);
    const alreadyDone = refs.filter((ref) => !toLoad.includes(ref));
    if (toLoad.length === 0) {
      await store.recordRefreshOutcome([], release, refreshNotice([], alreadyDone));
      log.info({ jobId: job.id, trigger: data.trigger, keys: refs.map((r) => r.cardKey), customerId: data.customer.id, durationMs: 0, outcome: 'skipped' }, 'refresh job');
      return;
    }

    const keys = toLoad.map((r) => r.cardKey);
    const slot = await deps.slots?.acquire(group, { bounded: false });
    let result: Awaited<ReturnType<typeof callUpstream>>;
    try {
      result = await callUpstream(
        { name: group.name, url: group.url, headers: group.headers, timeoutMs: group.timeoutMs, signingSecret: group.signingSecret },
        { workspaceId: data.workspaceId, cardKeys: keys, customer: data.customer, thread: data.thread, tenant: data.tenant },
      );
    } finally {
      slot?.();
    }
    const outcome = callOutcome(result, keys);
    metrics.upstreamDuration.observe({ upstream: group.name, outcome }, result.durationMs / 1000);
    const attempt = job.attemptsMade + 1;
    const lastAttempt = attempt >= (job.opts.attempts ?? 1);
    const jobLog = { jobId: job.id, trigger: data.trigger, attempt, keys, customerId: data.customer.id, durationMs: result.durationMs, outcome };

    if (!result.ok && result.failure.kind === 'retriable' && !lastAttempt) {
      log.warn({ ...jobLog, detail: result.failure.detail }, 'refresh job will be retried');
      throw new Error(result.failure.detail);
    }

    const events = eventsForResult(toLoad, result, await loadContext(deps, data));
    // The store counts the appended events (cardproxy_events_appended_total).
    await store.recordRefreshOutcome(events, release, refreshNotice(events, alreadyDone));
    // The cards are in the cache now: only from here may Plain be asked to reload them.
    deps.pushReloads?.cardsLanded(events.flatMap((e) => (e.type === 'card.refreshed' ? [refOf(e.data)] : [])));

    if (result.ok) {
      // The call worked, but a card of it may not have (missing from the answer, invalid): say why.
      const failures = events.flatMap((e) =>
        e.type === 'card.refresh_failed' ? [{ cardKey: e.data.cardKey, errorKind: e.data.errorKind, detail: e.data.detail }] : [],
      );
      if (failures.length > 0) log.warn({ ...jobLog, failures }, 'refresh job failed for some cards');
      else log.info(jobLog, 'refresh job');
      return;
    }
    log.warn({ ...jobLog, errorKind: result.failure.kind, detail: result.failure.detail, status: result.failure.status }, 'refresh job failed');
    // Recorded already; fail the job so it shows in the failed count, without further attempts.
    throw new UnrecoverableError(result.failure.detail);
  };
}

/** What turning a job's upstream result into events needs: the time, the customer, each card's settings. */
export async function loadContext(deps: ProcessorDeps, data: RefreshJobData): Promise<LoadContext> {
  const overrides = await deps.store.readOverrides();
  return {
    now: deps.clock.now(),
    customerEmail: data.customer.email ?? null,
    customerExternalId: data.customer.externalId ?? null,
    trigger: data.trigger,
    cardInfo: (cardKey) => {
      const policy = deps.policies.get(cardKey)!;
      return { upstream: policy.upstream, ttlSeconds: policy.ttlSeconds, overrideTtlSeconds: overrides.get(cardKey) ?? null };
    },
  };
}

/** The cards of a job, as cache identities. */
export function jobCardRefs(data: RefreshJobData): CardRef[] {
  return data.cards.map((c): CardRef => ({ workspaceId: data.workspaceId, customerId: data.customer.id, ...c }));
}

/** The cards still to load: those not loaded since the refresh was asked for. */
async function skipFreshlyLoaded(store: CardStore, refs: CardRef[], data: RefreshJobData): Promise<CardRef[]> {
  const states = await store.readStates(refs);
  // jobCardRefs lists the job's cards in the order of `data.cards`.
  const seen = new Map(jobCardRefs(data).map((ref, i) => [cardRefId(ref), data.cards[i]!.seenFetchedAt]));
  return refs.filter((ref, i) => {
    const fetchedAt = states[i]?.data?.fetchedAt;
    if (fetchedAt === undefined) return true;
    const seenFetchedAt = seen.get(cardRefId(ref));
    const loadedSinceLook = seenFetchedAt !== undefined && fetchedAt !== seenFetchedAt;
    return !loadedSinceLook && fetchedAt < data.requestedAt;
  });
}

function refOf({ workspaceId, customerId, threadId, cardKey }: CardRef): CardRef {
  return { workspaceId, customerId, threadId, cardKey };
}
