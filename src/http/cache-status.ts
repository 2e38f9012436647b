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
import { putAscii } from '../core/json-bytes.js';
import type { KeyOutcome } from '../service/card-resolver.js';

export const CACHE_STATUS_HEADER = 'cardproxy-cache';
export const CACHE_STATUS_MAX_BYTES = 1024;

function statusOf(outcome: KeyOutcome): string {
  if (outcome.result === 'unknown' || outcome.source === null) return 'unknown';
  return outcome.source === 'cache' ? 'fresh' : outcome.source;
}

/** The outcome of `key` among `outcomes`, if it has one. */
function outcomeOf(key: string, outcomes: readonly KeyOutcome[]): KeyOutcome | undefined {
  for (let o = 0; o < outcomes.length; o++) if (outcomes[o]!.key === key) return outcomes[o];
  return undefined;
}

/** Where the value is written, as bytes, then read out as one string: no string built of pieces. */
const scratch = Buffer.allocUnsafeSlow(CACHE_STATUS_MAX_BYTES);

/** The header value for a request's outcomes, ordered as `requestedKeys` (card keys are ASCII). */
export function cacheStatusHeader(requestedKeys: readonly string[], outcomes: readonly KeyOutcome[]): string {
  // At most 25 keys: plain loops, no maps or intermediate arrays (this runs on every request).
  // A repeated key is answered once. Counted first: room is kept for the "+N more" a later card may need.
  let count = 0;
  for (let k = 0; k < requestedKeys.length; k++) {
    const key = requestedKeys[k]!;
    if (requestedKeys.indexOf(key) === k && outcomeOf(key, outcomes) !== undefined) count++;
  }
  const reserve = '; + more'.length + digits(count);
  let at = 0;
  let shown = 0;
  for (let k = 0; k < requestedKeys.length; k++) {
    const key = requestedKeys[k]!;
    const outcome = requestedKeys.indexOf(key) === k ? outcomeOf(key, outcomes) : undefined;
    if (outcome === undefined) continue;
    const status = statusOf(outcome);
    const separator = at === 0 ? 0 : 2;
    if (at + separator + key.length + 1 + status.length + (shown + 1 < count ? reserve : 0) > CACHE_STATUS_MAX_BYTES) {
      if (at > 0) at = putAscii(scratch, at, '; ');
      at = putAscii(scratch, at, '+');
      at = putAscii(scratch, at, String(count - shown));
      at = putAscii(scratch, at, ' more');
      break;
    }
    if (separator > 0) at = putAscii(scratch, at, '; ');
    at = putAscii(scratch, at, key);
    at = putAscii(scratch, at, '=');
    at = putAscii(scratch, at, status);
    shown++;
  }
  return scratch.toString('latin1', 0, at);
}

function digits(n: number): number {
  return String(n).length;
}
