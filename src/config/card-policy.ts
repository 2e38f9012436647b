/**
 * A card's effective settings: the configured `defaults` merged with the card's own overrides,
 * with the built-in placeholder and error components where the card sets none.
 */
import type { CardComponent } from '../core/components.js';
import type { ResolutionPolicy } from '../core/card-resolution.js';
import type { RetentionPolicy } from '../core/card-state.js';
import type { CardScope, Config } from './schema.js';

/** Everything the resolution policy and the store read, plus what only configuration knows. */
export interface CardPolicy extends ResolutionPolicy, RetentionPolicy {
  readonly key: string;
  /** Name of the configured upstream that serves this card. */
  readonly upstream: string;
  /** Fresh period of a loaded card when neither an override nor the upstream sets one. */
  readonly ttlSeconds: number;
  readonly scope: CardScope;
  /** Warmed by webhooks and operator warming. */
  readonly warm: boolean;
}

export const DEFAULT_PLACEHOLDER: readonly CardComponent[] = deepFreeze([
  { componentText: { text: 'Loading…', textColor: 'MUTED' } },
] as CardComponent[]);

export const DEFAULT_ERROR_COMPONENTS: readonly CardComponent[] = deepFreeze([
  {
    componentText: {
      text: 'This card could not be loaded right now. Try reloading it in a minute.',
      textColor: 'ERROR',
    },
  },
] as CardComponent[]);

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** A `Map` whose mutators throw, so the resolved policies cannot be changed by accident. */
function frozenMap<K, V>(entries: Iterable<readonly [K, V]>): ReadonlyMap<K, V> {
  const map = new Map<K, V>(entries);
  const refuse = (): never => {
    throw new TypeError('card policies are read-only');
  };
  for (const method of ['set', 'delete', 'clear'] as const) {
    Object.defineProperty(map, method, { value: refuse, enumerable: false, writable: false, configurable: false });
  }
  return Object.freeze(map);
}

/** The effective policy of every configured card, keyed by card key, in configuration order. */
export function resolveCardPolicies(config: Config): ReadonlyMap<string, CardPolicy> {
  const { defaults } = config;
  const entries: Array<readonly [string, CardPolicy]> = [];
  for (const [key, card] of Object.entries(config.cards)) {
    const policy: CardPolicy = {
      key,
      upstream: card.upstream,
      ttlSeconds: card.ttlSeconds ?? defaults.ttlSeconds,
      staleSeconds: card.staleSeconds ?? defaults.staleSeconds,
      placeholderTtlSeconds: card.placeholderTtlSeconds ?? defaults.placeholderTtlSeconds,
      staleServeTtlSeconds: card.staleServeTtlSeconds ?? defaults.staleServeTtlSeconds,
      integrationErrorTtlSeconds: card.integrationErrorTtlSeconds ?? defaults.integrationErrorTtlSeconds,
      scope: card.scope ?? defaults.scope,
      refreshAhead: card.refreshAhead ?? defaults.refreshAhead,
      warm: card.warm ?? true,
      placeholder: card.placeholder ? deepFreeze(card.placeholder) : DEFAULT_PLACEHOLDER,
      errorComponents: card.errorComponents ? deepFreeze(card.errorComponents) : DEFAULT_ERROR_COMPONENTS,
    };
    entries.push([key, Object.freeze(policy)]);
  }
  return frozenMap(entries);
}
