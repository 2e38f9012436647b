/**
 * Plain's request signing: `Plain-Request-Signature: hex(HMAC-SHA256(secret, raw body))`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The signature Plain would send for this body. */
export function signBody(secret: string, body: Buffer | string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;

/**
 * True when `header` is the signature of `body` under one of `secrets`. Hex is compared
 * case-insensitively and in constant time; every secret is tried so timing tells nothing about
 * which one matched.
 */
export function verifySignature(secrets: readonly string[], body: Buffer, header: string | undefined): boolean {
  if (header === undefined || !HEX_SHA256.test(header.trim())) return false;
  const given = Buffer.from(header.trim().toLowerCase(), 'hex');
  let ok = false;
  for (const secret of secrets) {
    const expected = createHmac('sha256', secret).update(body).digest();
    ok = timingSafeEqual(given, expected) || ok;
  }
  return ok;
}
