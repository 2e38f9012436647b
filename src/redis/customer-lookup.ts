/**
 * The admin side's queries of derived keys: customers by identifier (the look-up index, one set
 * per shard and identifier), a customer's cards, the TTL overrides.
 */
import type { CardRef } from '../core/card-ref.js';
import type { CommandClient } from './commands/index.js';
import type { CustomerIndexKind, KeyLayout } from './keys.js';

/** A customer as the look-up index knows it. */
export interface CustomerRef {
  readonly workspaceId: string;
  readonly customerId: string;
}

export class CustomerLookup {
  readonly #client: CommandClient;
  readonly #keys: KeyLayout;

  constructor(client: CommandClient, keys: KeyLayout) {
    this.#client = client;
    this.#keys = keys;
  }

  /**
   * The customers the look-up index knows by this identifier (an email is matched lower-cased):
   * the union of every shard's set, one command per shard (each is in its own slot).
   */
  async findCustomers(kind: CustomerIndexKind, value: string): Promise<CustomerRef[]> {
    const needle = kind === 'email' ? value.toLowerCase() : value;
    const perShard = await Promise.all(this.#keys.eventStreams.map((_, shard) => this.#client.smembers(this.#keys.customerIndex(shard, kind, needle))));
    return [...new Set(perShard.flat())].flatMap((member) => {
      const at = member.indexOf('\n');
      return at === -1 ? [] : [{ workspaceId: member.slice(0, at), customerId: member.slice(at + 1) }];
    });
  }

  /** The cards cached for one customer (some may have expired since they were listed). */
  async customerCards(customer: CustomerRef): Promise<CardRef[]> {
    const members = await this.#client.smembers(this.#keys.customerCards(customer.workspaceId, customer.customerId));
    return members.flatMap((key) => {
      const ref = this.#keys.parseCard(key);
      return ref && ref.workspaceId === customer.workspaceId && ref.customerId === customer.customerId ? [ref] : [];
    });
  }

  /** The current run-time TTL overrides, card key → seconds. */
  async readOverrides(): Promise<Map<string, number>> {
    const all = await this.#client.hgetall(this.#keys.ttlOverrides);
    return new Map(Object.entries(all).map(([k, v]) => [k, Number(v)]));
  }

  /** One card's run-time TTL override, or null. */
  async readOverride(cardKey: string): Promise<number | null> {
    const value = await this.#client.hget(this.#keys.ttlOverrides, cardKey);
    return value === null ? null : Number(value);
  }
}
