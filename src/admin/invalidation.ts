/**
 * Operator invalidation (`POST /admin/invalidate`, `invalidate`): marks a customer's cached cards
 * stale so the next load serves them stale and refreshes them, and optionally queues that refresh
 * at once.
 *
 * Cards are found without scanning the keyspace: the customer look-up index (by id, lower-cased
 * email or external id) names the customers, each customer's card set names their cards. Every
 * mark is a `card.invalidated` event written through `CardStore.applyCardEvents`, so replay
 * restores it like any other state change.
 */
import type { Logger } from 'pino';
import type { CardRef } from '../core/card-ref.js';
import type { CardStateEvent } from '../core/card-events.js';
import type { CardState } from '../core/card-state.js';
import type { Clock } from '../core/clock.js';
import type { CardPolicy } from '../config/card-policy.js';
import type { UpstreamGroups } from '../config/upstream-groups.js';
import type { CardStore, CustomerRef } from '../redis/card-store.js';
import type { RefreshScheduler, RefreshTarget } from '../refresh/refresh-scheduler.js';
import type { InvalidateRequest } from './admin-requests.js';
import { findCustomers } from './customer-lookup.js';

/** What invalidation works with. */
export interface InvalidationDeps {
  readonly store: CardStore;
  readonly policies: ReadonlyMap<string, CardPolicy>;
  readonly groups: UpstreamGroups;
  readonly clock: Clock;
  /** Needed only for `refresh: true`. */
  readonly scheduler?: RefreshScheduler | undefined;
  readonly log?: Logger | undefined;
}

/** How many cards an invalidation marked (and queued for refresh). */
export interface InvalidationResult {
  /** Cached cards (with data) marked stale. */
  readonly invalidated: number;
  /** Of those, the cards whose refresh was queued (or joined a refresh already running). */
  readonly refreshing: number;
}

/**
 * Marks the matching cached cards stale; see the module comment.
 * @param identifiers the customer's current email and external id, when known (a Plain webhook):
 *   recorded with the events, so the look-up index follows them
 */
export async function invalidateCards(
  deps: InvalidationDeps,
  request: InvalidateRequest,
  identifiers?: { readonly email: string | null; readonly externalId: string | null },
): Promise<InvalidationResult> {
  const { store } = deps;
  if (request.refresh && !deps.scheduler) throw new Error('invalidate with refresh needs a refresh scheduler');
  const customers = await findCustomers(store, request.selector, request.workspaceId);
  let invalidated = 0;
  let refreshing = 0;
  for (const customer of customers) {
    let refs = await store.customerCards(customer);
    if (request.cardKeys !== null) refs = refs.filter((ref) => request.cardKeys!.includes(ref.cardKey));
    if (refs.length === 0) continue;
    const states = await store.readStates(refs);
    // Only cards with data can be served stale; a cached failure alone has nothing to mark.
    const cached = refs.flatMap((ref, i) => (states[i]?.data ? [{ ref, state: states[i]! }] : []));
    if (cached.length === 0) continue;
    const invalidatedAt = new Date(deps.clock.now()).toISOString();
    const events: CardStateEvent[] = cached.map(({ ref }) => ({
      type: 'card.invalidated',
      data: {
        workspaceId: ref.workspaceId,
        customerId: ref.customerId,
        threadId: ref.threadId,
        cardKey: ref.cardKey,
        ...(identifiers ? { customerEmail: identifiers.email, customerExternalId: identifiers.externalId } : {}),
        reason: request.reason,
        invalidatedAt,
      },
    }));
    await store.applyCardEvents(events);
    invalidated += cached.length;
    if (request.refresh) refreshing += await queueRefreshes(deps, customer, cached);
  }
  deps.log?.info({ selector: request.selector.kind, invalidated, refreshing }, 'cards invalidated');
  return { invalidated, refreshing };
}

/**
 * Queues a forced refresh of the marked cards, one context per thread (thread-scoped cards are
 * loaded in their thread), with the identifiers the cached state remembers.
 * @returns how many cards are being refreshed
 */
async function queueRefreshes(
  deps: InvalidationDeps,
  customer: CustomerRef,
  cached: ReadonlyArray<{ ref: CardRef; state: CardState }>,
): Promise<number> {
  const byThread = new Map<string | null, Array<{ ref: CardRef; state: CardState }>>();
  for (const card of cached) {
    if (!deps.policies.has(card.ref.cardKey)) continue; // no longer configured: nothing to load it from
    byThread.set(card.ref.threadId, [...(byThread.get(card.ref.threadId) ?? []), card]);
  }
  let count = 0;
  for (const [threadId, cards] of byThread) {
    const email = cards.find((c) => c.state.customerEmail !== null)?.state.customerEmail ?? null;
    const externalId = cards.find((c) => c.state.customerExternalId !== null)?.state.customerExternalId ?? null;
    const targets: RefreshTarget[] = cards.map(({ ref }) => ({ ref, group: deps.groups.groupOf(deps.policies.get(ref.cardKey)!.upstream) }));
    await deps.scheduler!.schedule(
      {
        workspaceId: customer.workspaceId,
        customer: { id: customer.customerId, email, externalId },
        thread: threadId === null ? null : { id: threadId },
        tenant: null,
      },
      targets,
      { force: true, now: deps.clock.now(), trigger: 'invalidate', urgency: 'warming' },
    );
    count += targets.length;
  }
  return count;
}
