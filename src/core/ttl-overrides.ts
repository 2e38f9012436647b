/**
 * Run-time TTL overrides as a projection of the event log: card key → seconds. `evolveOverrides`
 * is the only place that says how an override event changes them; the Redis store (one hash
 * field per card key) and replay both go through it.
 */
import type { TtlOverrideEvent } from './card-events.js';

/** Card key → the operator's TTL override in seconds. */
export type TtlOverrides = ReadonlyMap<string, number>;

/** No overrides: where the projection starts. */
export const NO_TTL_OVERRIDES: TtlOverrides = Object.freeze(new Map<string, number>());

/** Applies one override event. Pure: returns a new map, or the same one when nothing changes. */
export function evolveOverrides(overrides: TtlOverrides, event: TtlOverrideEvent): TtlOverrides {
  switch (event.type) {
    case 'ttl.override_set': {
      const { cardKey, ttlSeconds } = event.data;
      if (overrides.get(cardKey) === ttlSeconds) return overrides;
      return new Map(overrides).set(cardKey, ttlSeconds);
    }
    case 'ttl.override_cleared': {
      if (!overrides.has(event.data.cardKey)) return overrides;
      const next = new Map(overrides);
      next.delete(event.data.cardKey);
      return next;
    }
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
}
