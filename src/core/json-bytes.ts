/**
 * Writing JSON text straight into a byte buffer, for the few outputs built on every request (the
 * `/cards` answer, its log line): pieces go in where they belong, so no string is built of them.
 * Pure: the caller owns the buffer and has made room (see `jsonStringBound`).
 */

/** Text that is a JSON string as it is, between quotes: printable ASCII other than `"` and `\`. */
const PLAIN_JSON_TEXT = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** The most bytes `text` takes as a JSON string: 6 per UTF-16 unit (`\u001f`), and the quotes. */
export function jsonStringBound(text: string): number {
  return 6 * text.length + 2;
}

/** The exact bytes `text` takes as a JSON string (UTF-8). */
export function jsonStringBytes(text: string): number {
  return PLAIN_JSON_TEXT.test(text) ? text.length + 2 : Buffer.byteLength(JSON.stringify(text));
}

/**
 * A number as JSON text, as `JSON.stringify` writes it. (`String` of a small integer comes from
 * V8's cache of number strings: asked twice, for a length and then the text, it is made once.)
 */
export function jsonNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

/** Writes `text` as a JSON string (UTF-8) at `at`; returns where it ends. */
export function putJsonString(out: Buffer, at: number, text: string): number {
  if (!PLAIN_JSON_TEXT.test(text)) return at + out.write(JSON.stringify(text), at, 'utf8');
  out[at] = 0x22;
  at += 1 + out.write(text, at + 1, 'latin1');
  out[at] = 0x22;
  return at + 1;
}

/** Writes ASCII text (JSON punctuation, numbers, names known to be ASCII) at `at`; returns where it ends. */
export function putAscii(out: Buffer, at: number, text: string): number {
  return at + out.write(text, at, 'latin1');
}
