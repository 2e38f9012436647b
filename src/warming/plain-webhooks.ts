/**
 * What cardproxy does with an accepted Plain webhook (SPEC 10.1): remembers its id for 24 hours
 * (Plain delivers at least once), then, after the answer, warms the thread's customer or
 * invalidates an updated customer's cards. The route (http/routes/webhooks.ts) runs the checks.
 */
import type { RedisClient } from '../redis/connections.js';
import type { Logger } from 'pino';
import type { WebhookAction } from '../core/plain-webhook.js';
import { invalidateCards, type InvalidationDeps } from '../admin/invalidation.js';
import type { KeyLayout } from '../redis/keys.js';
import { warmCustomer, type WarmingDeps } from './warm-customer.js';

/** How long a delivery id is remembered: Plain retries a delivery for days, but an id seen in
 * the last 24 hours is what SPEC 10.1 de-duplicates. */
const DELIVERY_ID_TTL_SECONDS = 24 * 3600;

export interface PlainWebhookDeps extends WarmingDeps {
  readonly redis: RedisClient;
  readonly keys: KeyLayout;
  readonly log: Logger;
}

export class PlainWebhooks {
  readonly #d: PlainWebhookDeps;

  constructor(deps: PlainWebhookDeps) {
    this.#d = deps;
  }

  /**
   * Records a delivery id; false when it was already recorded in the last 24 hours. Kept in
   * Redis with a TTL, so memory stays bounded and every process sees every delivery.
   */
  async firstDelivery(id: string): Promise<boolean> {
    const set = await this.#d.redis.set(this.#d.keys.webhookDelivery(id), '1', 'EX', DELIVERY_ID_TTL_SECONDS, 'NX');
    return set === 'OK';
  }

  /** Carries out an accepted delivery's action in the background; failures are logged. */
  act(deliveryId: string, type: string, action: WebhookAction): void {
    const log = this.#d.log;
    this.#run(action).then(
      (result) => {
        if (result) log.info({ deliveryId, type, ...result }, 'webhook acted on');
      },
      (err: unknown) => log.warn({ err, deliveryId, type }, 'webhook could not be acted on'),
    );
  }

  async #run(action: WebhookAction): Promise<Record<string, unknown> | null> {
    const d = this.#d;
    switch (action.kind) {
      case 'warm': {
        const queued = await warmCustomer(d, { workspaceId: action.workspaceId, customer: action.customer, thread: action.thread, cardKeys: null });
        return { action: 'warm', workspaceId: action.workspaceId, customerId: action.customer.id, threadId: action.thread.id, queued };
      }
      case 'invalidate': {
        const deps: InvalidationDeps = { store: d.store, policies: d.policies, groups: d.groups, clock: d.clock };
        const { invalidated } = await invalidateCards(
          deps,
          { selector: { kind: 'customerId', value: action.customer.id }, workspaceId: action.workspaceId, cardKeys: null, refresh: false, reason: 'webhook' },
          { email: action.customer.email, externalId: action.customer.externalId },
        );
        return { action: 'invalidate', workspaceId: action.workspaceId, customerId: action.customer.id, invalidated };
      }
      case 'ignore':
      case 'invalid':
        return null;
      default: {
        const unreachable: never = action;
        return unreachable;
      }
    }
  }
}
