/**
 * What an operator can do (SPEC section 7), behind both the admin HTTP routes and the admin CLI
 * commands: list cards with their TTL overrides, set and clear an override, invalidate a
 * customer's cards, query the event log. Inputs are already validated (admin-requests.ts).
 */
import type { RedisClient } from '../redis/connections.js';
import { queryEvents, type LoggedEvent } from '../redis/event-log.js';
import type { InspectedCard } from '../core/card-inspection.js';
import type { CustomerRef } from '../redis/card-store.js';
import type { CustomerSearch, EventQuery, InvalidateRequest, WarmRequest } from './admin-requests.js';
import { warmCustomers } from '../warming/warm-customer.js';
import { customerCards, searchCustomers, type FoundCustomer } from './customer-cards.js';
import { cardListing, cardListings, type CardListing } from './card-listing.js';
import { invalidateCards, type InvalidationDeps, type InvalidationResult } from './invalidation.js';

/** What the operations work with; the runtime and the CLI each build one. */
export interface AdminDeps extends InvalidationDeps {
  readonly redis: RedisClient;
}

/** The operator's operations, shared by `routes/admin.ts` and `cli/admin-commands.ts`. */
export class AdminOperations {
  readonly #d: AdminDeps;

  constructor(deps: AdminDeps) {
    this.#d = deps;
  }

  /** False while the Redis connection is down: failures then mean "unavailable", not a bug. */
  get redisReady(): boolean {
    return this.#d.redis.status === 'ready';
  }

  /** True for a configured card key. */
  isKnownCard(cardKey: string): boolean {
    return this.#d.policies.has(cardKey);
  }

  /** Every configured card with its run-time TTL override. */
  async listCards(): Promise<CardListing[]> {
    return cardListings(this.#d.policies, await this.#d.store.readOverrides());
  }

  /**
   * Sets a run-time TTL override, for every instance, for cards loaded from now on.
   * @returns the card's entry, or null for an unknown card key
   */
  async setTtlOverride(cardKey: string, ttlSeconds: number): Promise<CardListing | null> {
    const policy = this.#d.policies.get(cardKey);
    if (!policy) return null;
    await this.#d.store.applyOverrideEvent({ type: 'ttl.override_set', data: { cardKey, ttlSeconds } });
    this.#d.log?.info({ cardKey, ttlSeconds }, 'ttl override set');
    return cardListing(policy, new Map([[cardKey, ttlSeconds]]));
  }

  /**
   * Clears a card's run-time TTL override (an event is recorded even when none was set).
   * @returns the card's entry, or null for an unknown card key
   */
  async clearTtlOverride(cardKey: string): Promise<CardListing | null> {
    const policy = this.#d.policies.get(cardKey);
    if (!policy) return null;
    await this.#d.store.applyOverrideEvent({ type: 'ttl.override_cleared', data: { cardKey } });
    this.#d.log?.info({ cardKey }, 'ttl override cleared');
    return cardListing(policy, new Map());
  }

  /** Marks a customer's cached cards stale (and optionally queues their refresh). */
  invalidate(request: InvalidateRequest): Promise<InvalidationResult> {
    return invalidateCards(this.#d, request);
  }

  /** Card keys of a warm request that are not configured. */
  unknownCards(cardKeys: readonly string[] | null): string[] {
    return (cardKeys ?? []).filter((key) => !this.#d.policies.has(key));
  }

  /**
   * Warms customers' cards (SPEC 10.2): a background refresh at warming priority for every card
   * that is missing or stale.
   * @returns how many card refreshes were queued
   */
  async warm(request: WarmRequest): Promise<{ queued: number }> {
    const scheduler = this.#d.scheduler;
    if (!scheduler) throw new Error('warming needs a refresh scheduler');
    const thread = request.threadId === null ? null : { id: request.threadId, externalId: null };
    const targets = request.customers.map((customer) => ({ workspaceId: request.workspaceId, customer, thread, cardKeys: request.cardKeys }));
    const queued = await warmCustomers({ ...this.#d, scheduler }, targets);
    this.#d.log?.info({ workspaceId: request.workspaceId, customers: targets.length, queued }, 'customers warmed');
    return { queued };
  }

  /** A customer's configured cards with their cached state (the operator console). */
  customerCards(customer: CustomerRef): Promise<{ customer: FoundCustomer; cards: InspectedCard[] }> {
    return customerCards(this.#d, customer);
  }

  /** Customers known by an id, email or external id (the operator console's search). */
  searchCustomers(search: CustomerSearch): Promise<FoundCustomer[]> {
    return searchCustomers(this.#d, search);
  }

  /** The newest matching events, newest first. */
  events(query: EventQuery): Promise<LoggedEvent[]> {
    return queryEvents(this.#d.redis, this.#d.store.keys.eventStreams, query);
  }
}
