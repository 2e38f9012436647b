/**
 * The `Cardproxy-Cache` response header of `/cards`: how each requested card was answered, in
 * the order of the request, for operators and curl users (nginx has `X-Cache-Status`). Example:
 * `Cardproxy-Cache: plan=fresh; usage=stale; orders=placeholder; typo=unknown`.
 *
 * Values: `fresh` (from the cache, within its TTL), `stale` (a stale copy, refreshed in the
 * background), `refreshed` (loaded within the budget), `placeholder` (still loading at the
 * deadline), `error` (error components), `unknown` (not a configured card; no card answered).
 * At most {@link CACHE_STATUS_MAX_BYTES} bytes: the cards that do not fit are counted as `+N more`.
 */
import type { KeyOutcome } from '../service/card-resolver.js';

export const CACHE_STATUS_HEADER = 'cardproxy-cache';
export const CACHE_STATUS_MAX_BYTES = 1024;

function statusOf(outcome: KeyOutcome): string {
  if (outcome.result === 'unknown' || outcome.source === null) return 'unknown';
  return outcome.source === 'cache' ? 'fresh' : outcome.source;
}

/** The header value for a request's outcomes, ordered as `requestedKeys` (card keys are ASCII). */
export function cacheStatusHeader(requestedKeys: readonly string[], outcomes: readonly KeyOutcome[]): string {
  const byKey = new Map(outcomes.map((o) => [o.key, o]));
  const parts = [...new Set(requestedKeys)].flatMap((key) => {
    const outcome = byKey.get(key);
    return outcome ? [`${key}=${statusOf(outcome)}`] : [];
  });
  let value = '';
  for (let i = 0; i < parts.length; i++) {
    const next = value === '' ? parts[i]! : `${value}; ${parts[i]}`;
    const rest = parts.length - i - 1;
    // Room is kept for the "+N more" that a later card may need.
    const reserve = rest > 0 ? `; +${parts.length} more`.length : 0;
    if (next.length + reserve > CACHE_STATUS_MAX_BYTES) return `${value === '' ? '' : `${value}; `}+${parts.length - i} more`;
    value = next;
  }
  return value;
}
