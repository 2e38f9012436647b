/**
 * What the admin API answers, as the console reads it (SPEC sections 7 and 15). The server's
 * types are checked against these in test/console/wire-contract.test.ts.
 */
import type { UiComponent } from './components.js';

export type CardStateName = 'fresh' | 'stale' | 'error' | 'missing';
export type TtlSourceName = 'override' | 'upstream' | 'config';

export interface WireFailure {
  readonly errorKind: 'retriable' | 'integration';
  readonly detail: string;
  readonly status: number | null;
  readonly failedAt: string;
}

export interface WireCard {
  readonly key: string;
  readonly scope: 'customer' | 'thread';
  readonly threadId: string | null;
  readonly state: CardStateName;
  readonly components: readonly UiComponent[] | null;
  readonly fetchedAt: string | null;
  readonly expiresAt: string | null;
  readonly ttlSource: TtlSourceName | null;
  readonly lastFailure: WireFailure | null;
  readonly ttlSeconds: number | null;
  readonly upstream: string | null;
  readonly invalidatedAt: string | null;
  readonly staleUntil: string | null;
}

export interface WireCustomer {
  readonly workspaceId: string;
  readonly customerId: string;
  readonly email: string | null;
  readonly externalId: string | null;
}

export interface CustomerCardsAnswer {
  readonly customer: WireCustomer;
  readonly cards: readonly WireCard[];
}

export interface CardListingEntry {
  readonly key: string;
  readonly upstream: string;
  readonly scope: 'customer' | 'thread';
  readonly ttlSeconds: number;
  readonly staleSeconds: number;
  readonly overrideTtlSeconds: number | null;
}

export interface LoggedEvent {
  readonly id: string;
  readonly type: string;
  readonly at: string;
  readonly data: unknown;
}

export interface OverviewAnswer {
  readonly at: string;
  readonly requests: number;
  readonly lookups: Readonly<Record<string, number>>;
  readonly served: Readonly<Record<string, number>>;
  readonly budgetExhausted: number;
  readonly unknownCardKeys: number;
  readonly queues: ReadonlyArray<{ upstream: string; waiting: number; active: number; delayed: number; failed: number }>;
  readonly upstreams: ReadonlyArray<{ upstream: string; calls: number; errors: number; totalSeconds: number; p95Seconds: number | null }>;
  readonly webhooks: Readonly<Record<string, number>> | null;
  readonly warming: { readonly enqueued: Readonly<Record<string, number>>; readonly dropped: number | null } | null;
}

export interface ErrorAnswer {
  readonly error: string;
  readonly message: string;
}
