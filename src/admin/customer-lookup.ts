/**
 * Finding customers through the look-up index (by id, lower-cased email or external id), for
 * invalidation and the operator console's search. Never scans the keyspace.
 */
import type { CardStore, CustomerRef } from '../redis/card-store.js';
import type { CustomerSelectorKind } from './admin-requests.js';

/** One identifier to look a customer up by. */
export interface CustomerSelector {
  readonly kind: CustomerSelectorKind;
  readonly value: string;
}

/** The distinct customers the index knows by `selector`, optionally in one workspace only. */
export async function findCustomers(store: CardStore, selector: CustomerSelector, workspaceId: string | null): Promise<CustomerRef[]> {
  const found = await store.findCustomers(selector.kind === 'customerId' ? 'id' : selector.kind, selector.value);
  const unique = new Map(found.map((c) => [`${c.workspaceId}\n${c.customerId}`, c]));
  return [...unique.values()].filter((c) => workspaceId === null || c.workspaceId === workspaceId);
}
