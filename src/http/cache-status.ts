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
  // At most 25 keys: plain loops, no maps or intermediate arrays (this runs on every request).
  const parts: string[] = [];
  for (let k = 0; k < requestedKeys.length; k++) {
    const key = requestedKeys[k]!;
    if (requestedKeys.indexOf(key) !== k) continue; // a repeated key is answered once
    for (let o = 0; o < outcomes.length; o++) {
      if (outcomes[o]!.key === key) {
        parts.push(`${key}=${statusOf(outcomes[o]!)}`);
        break;
      }
    }
  }
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
