/**
 * The operator's view of the configured cards (`GET /admin/cards`, `ttl list`): each card's
 * upstream, scope and configured windows, and its run-time TTL override (null when none).
 */
import type { CardPolicy } from '../config/card-policy.js';
import type { TtlOverrides } from '../core/ttl-overrides.js';

/** One entry of `GET /admin/cards` (SPEC section 7). */
export interface CardListing {
  readonly key: string;
  readonly upstream: string;
  readonly scope: CardPolicy['scope'];
  readonly ttlSeconds: number;
  readonly staleSeconds: number;
  readonly overrideTtlSeconds: number | null;
}

/** One card's entry. */
export function cardListing(policy: CardPolicy, overrides: TtlOverrides): CardListing {
  return {
    key: policy.key,
    upstream: policy.upstream,
    scope: policy.scope,
    ttlSeconds: policy.ttlSeconds,
    staleSeconds: policy.staleSeconds,
    overrideTtlSeconds: overrides.get(policy.key) ?? null,
  };
}

/** Every configured card, in configuration order. */
export function cardListings(policies: ReadonlyMap<string, CardPolicy>, overrides: TtlOverrides): CardListing[] {
  return [...policies.values()].map((policy) => cardListing(policy, overrides));
}
