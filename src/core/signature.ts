/**
 * Plain's request signing: `Plain-Request-Signature: hex(HMAC-SHA256(secret, raw body))`.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';

/** The signature Plain would send for this body. */
export function signBody(secret: string, body: Buffer | string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * True when `header` is the signature of `body` under one of `secrets`. Hex is compared
 * case-insensitively and in constant time (as the 32 bytes it encodes); every secret is tried so
 * timing tells nothing about which one matched.
 */
export function verifySignature(secrets: readonly string[], body: Buffer, header: string | undefined): boolean {
  if (header === undefined) return false;
  const hex = header.length === 64 ? header : header.trim();
  // Hex decoding (either case) stops at the first pair that is not two hex digits: 32 bytes only
  // for 64 of them.
  if (hex.length !== 64 || given.write(hex, 0, 'hex') !== 32) return false;
  let ok = false;
  for (const key of keysOf(secrets)) {
    // A digest as hex text and decoded into a kept buffer: cheaper than a new Buffer from node:crypto.
    expected.write(hmacSha256Hex(key, body), 0, 'hex');
    ok = timingSafeEqual(given, expected) || ok;
  }
  return ok;
}

/** The signature given and the one computed, as bytes (no buffer allocated per request). */
const given = Buffer.alloc(32);
const expected = Buffer.alloc(32);

/**
 * HMAC-SHA256 (RFC 2104) as two one-shot SHA-256 calls of node:crypto:
 * `H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ body))`, with each secret's padded keys computed once and the
 * messages assembled in buffers kept for it. The same digest as `createHmac` (tested against it),
 * without what `createHmac` builds per call: a stream object and a native object with a handle
 * the garbage collector must visit. (Checking a signature is the first thing a request does, and
 * those objects were a measurable part of a warm request's cost.) Bodies larger than the kept
 * buffer go through `createHmac`.
 */
interface HmacKey {
  readonly secret: string;
  /** `K ⊕ ipad`, followed by room for a body of up to `MAX_INLINE_BODY` bytes. */
  readonly inner: Buffer;
  /** `K ⊕ opad`, followed by room for the inner digest. */
  readonly outer: Buffer;
}

/** SHA-256's block size: keys are padded (or first hashed) to it. */
const BLOCK_BYTES = 64;
/** Bodies up to this size are hashed from the key's own buffer; a `/cards` body is a few hundred bytes. */
const MAX_INLINE_BODY = 16 * 1024;

function hmacKey(secret: string): HmacKey {
  let key = Buffer.from(secret, 'utf8');
  if (key.length > BLOCK_BYTES) key = hash('sha256', key, 'buffer');
  const inner = Buffer.alloc(BLOCK_BYTES + MAX_INLINE_BODY);
  const outer = Buffer.alloc(BLOCK_BYTES + 32);
  for (let i = 0; i < BLOCK_BYTES; i++) {
    const k = i < key.length ? key[i]! : 0;
    inner[i] = k ^ 0x36;
    outer[i] = k ^ 0x5c;
  }
  return { secret, inner, outer };
}

function hmacSha256Hex(key: HmacKey, body: Buffer): string {
  if (body.length > MAX_INLINE_BODY) return signBody(key.secret, body);
  body.copy(key.inner, BLOCK_BYTES);
  key.outer.write(hash('sha256', key.inner.subarray(0, BLOCK_BYTES + body.length), 'binary'), BLOCK_BYTES, 'latin1');
  return hash('sha256', key.outer, 'hex');
}

/** The keys of a list of secrets, made once per list (a reloaded configuration brings a new list). */
const keysBySecrets = new WeakMap<readonly string[], readonly HmacKey[]>();

function keysOf(secrets: readonly string[]): readonly HmacKey[] {
  let keys = keysBySecrets.get(secrets);
  if (keys === undefined) {
    keys = secrets.map(hmacKey);
    keysBySecrets.set(secrets, keys);
  }
  return keys;
}
