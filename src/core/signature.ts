/**
 * Plain's request signing: `Plain-Request-Signature: hex(HMAC-SHA256(secret, raw body))`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The signature Plain would send for this body. */
export function signBody(secret: string, body: Buffer | string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * True when `header` is the signature of `body` under one of `secrets`. Hex is compared
 * case-insensitively and in constant time; every secret is tried so timing tells nothing about
 * which one matched. (The digest is taken as hex text and compared as such: a digest returned as
 * a Buffer costs a native buffer allocation per request, more than the rest of the check.)
 */
export function verifySignature(secrets: readonly string[], body: Buffer, header: string | undefined): boolean {
  if (header === undefined) return false;
  const hex = header.trim().toLowerCase();
  if (!HEX_SHA256.test(hex)) return false;
  const given = Buffer.from(hex, 'latin1');
  let ok = false;
  for (const secret of secrets) {
    const expected = Buffer.from(createHmac('sha256', secret).update(body).digest('hex'), 'latin1');
    ok = timingSafeEqual(given, expected) || ok;
  }
  return ok;
}
