/**
 * Text fields that become Redis keys, job data and upstream requests: limited in length and
 * well-formed. JSON can carry a lone UTF-16 surrogate (`"\ud800"`) that no encoding can: URI
 * encoding of a key throws, UTF-8 replaces it, so such text is refused where it enters (400),
 * never reaching a key builder or a worker. The length limits are Plain's own order of
 * magnitude (its keys and titles are at most 500 characters); a 900 KB customer id would
 * otherwise be copied into a dozen Redis keys and values per request.
 */
import { z } from 'zod';

/** True when `text` holds no lone UTF-16 surrogate, so it can be encoded (UTF-8, URI). */
export function isWellFormed(text: string): boolean {
  // ES2024's String.prototype.isWellFormed (Node 20+), a native scan; TypeScript's lib here is ES2023.
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
}

export const NOT_WELL_FORMED = 'must be valid Unicode text (it contains an unpaired UTF-16 surrogate)';

/** The longest id or external id accepted (customer, thread, tenant, workspace). */
export const IDENTIFIER_MAX_LENGTH = 500;
/** The longest email address accepted (RFC 5321's 64 + 1 + 255, rounded). */
export const EMAIL_MAX_LENGTH = 320;

/** A well-formed string of at most `max` characters (the shared refinement of every boundary). */
export function boundedText(max: number) {
  return z.string().max(max, `must be at most ${max} characters`).refine(isWellFormed, NOT_WELL_FORMED);
}

/** An id or external id. */
export const IdentifierSchema = boundedText(IDENTIFIER_MAX_LENGTH);
/** An email address as Plain sends it (not checked for syntax: matched as given). */
export const EmailSchema = boundedText(EMAIL_MAX_LENGTH);
