/**
 * The TTL a freshly loaded card gets, in order of precedence (SPEC section 5): a run-time override
 * set by an operator, the upstream's `timeToLiveSeconds`, the card's configured `ttlSeconds`.
 */
import { z } from 'zod';

/** Where a loaded card's TTL came from (shown by the operator console). */
export const TtlSourceSchema = z.enum(['override', 'upstream', 'config']);
export type TtlSource = z.infer<typeof TtlSourceSchema>;

/** The effective TTL and which of the three settings gave it. */
export function effectiveTtl(override: number | null, fromUpstream: number | null, configured: number): { seconds: number; source: TtlSource } {
  if (override !== null) return { seconds: override, source: 'override' };
  if (fromUpstream !== null) return { seconds: fromUpstream, source: 'upstream' };
  return { seconds: configured, source: 'config' };
}

export function effectiveTtlSeconds(override: number | null, fromUpstream: number | null, configured: number): number {
  return effectiveTtl(override, fromUpstream, configured).seconds;
}
