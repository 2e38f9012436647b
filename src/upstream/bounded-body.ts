/**
 * A response body read to its end as UTF-8 text, refused past a byte limit: the card APIs' answers
 * (node:http) and Plain's API's (fetch) alike, both async iterables of byte chunks.
 */

/** JSON is UTF-8 (RFC 8259 8.1): invalid bytes are an error, never silently replaced by U+FFFD. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export type BodyRead = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly detail: string };

/**
 * The body as text, or why it is refused: larger than `limit` (as declared or as sent; reading
 * stops there) or not UTF-8. How a refusal counts is the caller's: a card API's is an integration
 * error, never retried (the same request would get the same answer).
 * @param answered who answered what, to begin the reason with ("upstream answered 200")
 * @param declared the Content-Length header, when there is one
 * @param stop ends the transfer of a body refused for its declared length, before it is read (one
 *   refused while it is read ends as the loop is left: both kinds of stream stop on that)
 */
export async function readBoundedBody(
  chunks: AsyncIterable<Uint8Array>,
  answered: string,
  declared: string | null | undefined,
  limit: number,
  stop: () => void,
): Promise<BodyRead> {
  const tooLarge = { ok: false as const, detail: `${answered} with a body larger than ${limit} bytes` };
  if (Number(declared ?? 0) > limit) {
    stop();
    return tooLarge;
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > limit) return tooLarge;
    parts.push(chunk);
  }
  try {
    return { ok: true, text: UTF8.decode(parts.length === 1 ? parts[0] : Buffer.concat(parts, size)) };
  } catch {
    return { ok: false, detail: `${answered} with a body that is not valid UTF-8` };
  }
}
