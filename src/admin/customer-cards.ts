/**
 * A customer's cards as the operator console shows them (`GET /admin/customers/:id/cards`, SPEC
 * section 15), and the console's customer search. Read from the projection (the customer's card
 * set, then one MGET of their states) and described by the pure `inspectCard`.
 */
import type { CardPolicy } from '../config/card-policy.js';
import { inspectCard, type InspectedCard } from '../core/card-inspection.js';
import type { CardState } from '../core/card-state.js';
import type { Clock } from '../core/clock.js';
import type { CardStore, CustomerRef } from '../redis/card-store.js';
import type { CustomerSearch } from './admin-requests.js';
import { findCustomers } from './customer-lookup.js';

/** What the console needs to read a customer. */
export interface CustomerCardsDeps {
  readonly store: CardStore;
  readonly policies: ReadonlyMap<string, CardPolicy>;
  readonly clock: Clock;
}

/** A customer the index knows, with the identifiers their cached cards remember. */
export interface FoundCustomer extends CustomerRef {
  readonly email: string | null;
  readonly externalId: string | null;
}

/** Customers found by a search, at most this many (an email may be shared across workspaces). */
const MAX_FOUND_CUSTOMERS = 50;

/**
 * Every configured card of the customer, in configuration order: each cached copy (one per thread
 * for thread-scope cards), and a `missing` entry for a card with none. Cached cards of keys no
 * longer configured are left out: they are never served again.
 */
export async function customerCards(deps: CustomerCardsDeps, customer: CustomerRef): Promise<{ customer: FoundCustomer; cards: InspectedCard[] }> {
  const refs = await deps.store.customerCards(customer);
  const states = await deps.store.readStates(refs);
  const now = deps.clock.now();
  const cards: InspectedCard[] = [];
  for (const policy of deps.policies.values()) {
    const cached = refs.flatMap((ref, i) => (ref.cardKey === policy.key && states[i] !== undefined ? [{ ref, state: states[i] }] : []));
    cached.sort((a, b) => (a.ref.threadId ?? '').localeCompare(b.ref.threadId ?? ''));
    if (cached.length === 0) cards.push(inspectCard(now, { key: policy.key, scope: policy.scope, threadId: null }, undefined, policy));
    for (const { ref, state } of cached) cards.push(inspectCard(now, { key: policy.key, scope: policy.scope, threadId: ref.threadId }, state, policy));
  }
  return { customer: { ...customer, ...identifiersOf(states) }, cards };
}

/** The customers the look-up index knows by the searched identifier, with their identifiers. */
export async function searchCustomers(deps: CustomerCardsDeps, search: CustomerSearch): Promise<FoundCustomer[]> {
  const found = (await findCustomers(deps.store, search.selector, search.workspaceId)).slice(0, MAX_FOUND_CUSTOMERS);
  return Promise.all(
    found.map(async (customer) => ({ ...customer, ...identifiersOf(await deps.store.readStates(await deps.store.customerCards(customer))) })),
  );
}

/** The customer's email and external id, as their cached cards remember them. */
function identifiersOf(states: ReadonlyArray<CardState | undefined>): { email: string | null; externalId: string | null } {
  return {
    email: states.find((s) => s?.customerEmail != null)?.customerEmail ?? null,
    externalId: states.find((s) => s?.customerExternalId != null)?.customerExternalId ?? null,
  };
}
