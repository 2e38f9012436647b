/**
 * The admin API's bearer token check. Both sides are hashed to equal-length SHA-256 digests and
 * compared with `timingSafeEqual`, so neither the token's content nor its length leaks through
 * response timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const BEARER = /^Bearer[ \t]+(.*?)[ \t]*$/i;

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * True when an `Authorization` header value is `Bearer <token>` for the configured token.
 * @param header the header as received (absent, or repeated, counts as no match)
 */
export function bearerTokenMatches(header: string | string[] | undefined, token: string): boolean {
  if (typeof header !== 'string') return false;
  const presented = BEARER.exec(header)?.[1];
  // Compare even when the header is malformed, so the time taken does not tell which it was.
  const matches = timingSafeEqual(digest(presented ?? ''), digest(token));
  return presented !== undefined && presented !== '' && matches;
}
