/**
 * Plain's request signing (SPEC 2.3): hex(HMAC-SHA256(secret, raw body)), hex compared
 * case-insensitively, several secrets for rotation.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signBody, verifySignature } from '../../src/core/signature.js';

/** Plain's published test vector. */
const VECTOR = {
  secret: 'secret',
  body: 'hello-world',
  signature: '1bff4699de4fb5202a4b1e6cefd7b5fdfb02d19a67a1eb371dd417a45b0a47df',
};
const BODY = Buffer.from(VECTOR.body);

describe('signBody', () => {
  it("matches Plain's test vector for a string body", () => {
    expect(signBody(VECTOR.secret, VECTOR.body)).toBe(VECTOR.signature);
  });

  it("matches Plain's test vector for a Buffer body", () => {
    expect(signBody(VECTOR.secret, BODY)).toBe(VECTOR.signature);
  });

  it('is lower-case hex of 64 characters', () => {
    expect(signBody('another-secret', '{"cardKeys":["a"]}')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('depends on the secret', () => {
    expect(signBody('secret2', VECTOR.body)).not.toBe(VECTOR.signature);
  });

  it('signs the UTF-8 bytes of a string the same as the Buffer of those bytes', () => {
    const text = '{"customer":{"email":"zoë@grocery.co"}}';
    expect(signBody('s', text)).toBe(signBody('s', Buffer.from(text, 'utf8')));
  });
});

describe('verifySignature', () => {
  const oneByteChanged = Buffer.from(BODY);
  oneByteChanged[0] = oneByteChanged[0]! ^ 0x01;

  it.each<[string, readonly string[], Buffer, string | undefined, boolean]>([
    ["Plain's test vector", ['secret'], BODY, VECTOR.signature, true],
    ['upper-case hex', ['secret'], BODY, VECTOR.signature.toUpperCase(), true],
    ['mixed-case hex', ['secret'], BODY, VECTOR.signature.slice(0, 32).toUpperCase() + VECTOR.signature.slice(32), true],
    ['surrounding spaces', ['secret'], BODY, `  ${VECTOR.signature}  `, true],
    ['a surrounding tab and newline', ['secret'], BODY, `\t${VECTOR.signature}\n`, true],
    ['the second of several secrets', ['old-secret', 'secret'], BODY, VECTOR.signature, true],
    ['the first of several secrets', ['secret', 'new-secret'], BODY, VECTOR.signature, true],
    ['the last of three secrets', ['a', 'b', 'secret'], BODY, VECTOR.signature, true],
    ['a wrong secret', ['not-the-secret'], BODY, VECTOR.signature, false],
    ['none of several secrets', ['a', 'b'], BODY, VECTOR.signature, false],
    ['a missing header', ['secret'], BODY, undefined, false],
    ['an empty header', ['secret'], BODY, '', false],
    ['a whitespace-only header', ['secret'], BODY, '   ', false],
    ['non-hex characters of the right length', ['secret'], BODY, 'z'.repeat(64), false],
    ['a non-hex character inside the right signature', ['secret'], BODY, `${VECTOR.signature.slice(0, 63)}g`, false],
    ['a "sha256=" prefix', ['secret'], BODY, `sha256=${VECTOR.signature}`, false],
    ['one hex digit too few', ['secret'], BODY, VECTOR.signature.slice(0, 63), false],
    ['one hex digit too many', ['secret'], BODY, `${VECTOR.signature}0`, false],
    ['a truncated (32-byte hex prefix) signature', ['secret'], BODY, VECTOR.signature.slice(0, 32), false],
    ['the signature twice', ['secret'], BODY, VECTOR.signature + VECTOR.signature, false],
    ['an empty list of secrets', [], BODY, VECTOR.signature, false],
    ['a body with one byte changed', ['secret'], oneByteChanged, VECTOR.signature, false],
    ['a body with a trailing newline', ['secret'], Buffer.from(`${VECTOR.body}\n`), VECTOR.signature, false],
    ['an empty body', ['secret'], Buffer.alloc(0), VECTOR.signature, false],
    ['a signature with one digit changed', ['secret'], BODY, `${VECTOR.signature.slice(0, 63)}e`, false],
  ])('%s → %s', (_name, secrets, body, header, expected) => {
    expect(verifySignature(secrets, body, header)).toBe(expected);
  });

  it('accepts what signBody produced, over arbitrary bytes', () => {
    const body = Buffer.from([0x00, 0xff, 0x7b, 0x22, 0xc3, 0xa9, 0x0a]);
    expect(verifySignature(['k'], body, signBody('k', body))).toBe(true);
  });

  it('agrees with createHmac for keys shorter than, as long as and longer than a block, and bodies of every size class', () => {
    const secrets = ['k', 's'.repeat(63), 's'.repeat(64), 's'.repeat(65), 'ü'.repeat(40), 'x'.repeat(500)];
    const sizes = [0, 1, 63, 64, 65, 1000, 16 * 1024, 16 * 1024 + 1, 200_000];
    for (const secret of secrets) {
      for (const size of sizes) {
        const body = Buffer.alloc(size, (size % 251) + 1);
        const signature = createHmac('sha256', secret).update(body).digest('hex');
        expect(verifySignature([secret], body, signature), `secret of ${secret.length}, body of ${size}`).toBe(true);
        expect(verifySignature(['other', secret], body, signature)).toBe(true);
        const wrong = `${signature.slice(0, 63)}${signature.endsWith('0') ? '1' : '0'}`;
        expect(verifySignature([secret], body, wrong)).toBe(false);
      }
    }
  });

  it('checks a shorter body after a longer one under the same key (no bytes of the earlier body count)', () => {
    const secrets = ['secret'];
    const long = Buffer.from(`${VECTOR.body}${'x'.repeat(500)}`);
    expect(verifySignature(secrets, long, signBody('secret', long))).toBe(true);
    expect(verifySignature(secrets, BODY, VECTOR.signature)).toBe(true);
  });

  it('uses the secrets of the list it is given: a new list after a reload, the old one no longer', () => {
    const before = ['old'];
    const after = ['new'];
    expect(verifySignature(before, BODY, signBody('old', BODY))).toBe(true);
    expect(verifySignature(after, BODY, signBody('old', BODY))).toBe(false);
    expect(verifySignature(after, BODY, signBody('new', BODY))).toBe(true);
  });
});
