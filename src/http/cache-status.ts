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
  const keys: string[] = [];
  const statuses: string[] = [];
  statusesOf(requestedKeys, outcomes, keys, statuses);
  return format(keys, statuses);
}

/**
 * `cacheStatusHeader` that keeps its last value: Plain asks for the same cards in every request
 * and, warm, all of them are fresh, so the value is nearly always the one before. The same string
 * again (flat, made once) spares building it, and Node's header check a concatenated string to
 * flatten and test on every answer. One per endpoint; nothing per request but two small arrays.
 */
export class CacheStatusHeaders {
  #keys: string[] = [];
  #statuses: string[] = [];
  #value = '';

  valueFor(requestedKeys: readonly string[], outcomes: readonly KeyOutcome[]): string {
    const keys: string[] = [];
    const statuses: string[] = [];
    statusesOf(requestedKeys, outcomes, keys, statuses);
    if (!sameStrings(keys, this.#keys) || !sameStrings(statuses, this.#statuses)) {
      this.#keys = keys;
      this.#statuses = statuses;
      this.#value = format(keys, statuses);
    }
    return this.#value;
  }
}

/** Each requested key once, in order, with its status; a key without an outcome is left out. */
function statusesOf(requestedKeys: readonly string[], outcomes: readonly KeyOutcome[], keys: string[], statuses: string[]): void {
  // At most 25 keys: plain loops, no maps (this runs on every request).
  for (let k = 0; k < requestedKeys.length; k++) {
    const key = requestedKeys[k]!;
    if (requestedKeys.indexOf(key) !== k) continue; // a repeated key is answered once
    for (let o = 0; o < outcomes.length; o++) {
      if (outcomes[o]!.key === key) {
        keys.push(key);
        statuses.push(statusOf(outcomes[o]!));
        break;
      }
    }
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function format(keys: readonly string[], statuses: readonly string[]): string {
  let value = '';
  for (let i = 0; i < keys.length; i++) {
    const part = `${keys[i]}=${statuses[i]}`;
    const next = value === '' ? part : `${value}; ${part}`;
    const rest = keys.length - i - 1;
    // Room is kept for the "+N more" that a later card may need.
    const reserve = rest > 0 ? `; +${keys.length} more`.length : 0;
    if (next.length + reserve > CACHE_STATUS_MAX_BYTES) return `${value === '' ? '' : `${value}; `}+${keys.length - i} more`;
    value = next;
  }
  return value;
}
