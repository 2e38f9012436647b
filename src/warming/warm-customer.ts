/**
 * Warming (SPEC 10): loads a customer's cards before anyone asks, for a webhook or an operator.
 * A card that is fresh, or whose integration error is still negatively cached, is left alone; a
 * missing or stale one gets a background refresh at warming priority (the lowest), carrying what
 * Plain itself would have sent (customer, thread, `tenant: null`), batched per upstream as usual.
 */
import { cardRefFor } from '../core/card-ref.js';
import { lookupCard } from '../core/card-resolution.js';
import type { Clock } from '../core/clock.js';
import type { CardPolicy } from '../config/card-policy.js';
import type { UpstreamGroups } from '../config/upstream-groups.js';
import type { CardStore } from '../redis/card-store.js';
import type { RefreshScheduler, RefreshTarget } from '../refresh/refresh-scheduler.js';

export interface WarmingDeps {
  readonly store: CardStore;
  readonly scheduler: RefreshScheduler;
  readonly policies: ReadonlyMap<string, CardPolicy>;
  readonly groups: UpstreamGroups;
  readonly clock: Clock;
}

/** One customer (and optionally thread) to warm. */
export interface WarmTarget {
  readonly workspaceId: string;
  readonly customer: { readonly id: string; readonly email: string | null; readonly externalId: string | null };
  readonly thread: { readonly id: string; readonly externalId: string | null } | null;
  /** Exactly these configured cards; null: every card whose `warm` is true. */
  readonly cardKeys: readonly string[] | null;
}

/**
 * Queues the refreshes a customer's cards need. Thread-scope cards are warmed only with a thread.
 * @returns how many card refreshes were queued (fresh cards, refreshes already queued or
 *   running, and warming dropped past `warming.maxQueued` are not counted)
 */
export async function warmCustomer(deps: WarmingDeps, target: WarmTarget): Promise<number> {
  const { workspaceId, customer, thread } = target;
  const policies = [...deps.policies.values()].filter((policy) =>
    target.cardKeys === null ? policy.warm : target.cardKeys.includes(policy.key),
  );
  const cards = policies
    .filter((policy) => policy.scope === 'customer' || thread !== null)
    .map((policy) => ({ policy, ref: cardRefFor(policy.scope, { workspaceId, customerId: customer.id, threadId: thread?.id ?? null }, policy.key) }));
  if (cards.length === 0) return 0;
  // Taken before the read: a job finds a card loaded after it (a refresh that was landing while we
  // read) already done, and skips the call.
  const readAt = deps.clock.now();
  const states = await deps.store.readStates(cards.map((c) => c.ref));
  const now = deps.clock.now();
  const targets: RefreshTarget[] = [];
  cards.forEach(({ policy, ref }, i) => {
    const kind = lookupCard(now, states[i], policy, false).kind;
    if (kind === 'miss' || kind === 'stale') targets.push({ ref, group: deps.groups.groupOf(policy.upstream) });
  });
  if (targets.length === 0) return 0;
  const queued = await deps.scheduler.schedule(
    { workspaceId, customer, thread: thread ?? null, tenant: null },
    targets,
    { force: false, now: readAt, trigger: 'warm', urgency: 'warming' },
  );
  return queued.length;
}

/**
 * Warms many customers, at most `concurrency` at a time, so that a big operator request does not
 * flood Redis with parallel reads.
 * @returns the total of card refreshes queued
 */
export async function warmCustomers(deps: WarmingDeps, targets: readonly WarmTarget[], concurrency = 16): Promise<number> {
  let next = 0;
  let queued = 0;
  const lane = async () => {
    while (next < targets.length) {
      const count = await warmCustomer(deps, targets[next++]!);
      queued += count; // not `queued += await …`: that reads `queued` before the wait
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, lane));
  return queued;
}
