/**
 * The TTL a freshly loaded card gets, in order of precedence (SPEC section 5): a run-time override
 * set by an operator, the upstream's `timeToLiveSeconds`, the card's configured `ttlSeconds`.
 */
export function effectiveTtlSeconds(override: number | null, fromUpstream: number | null, configured: number): number {
  return override ?? fromUpstream ?? configured;
}
