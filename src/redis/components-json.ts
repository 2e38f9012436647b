/**
 * A card's components as the JSON they were stored as in the cache.
 *
 * On a warm `/cards` hit the components, which are most of a cached card's bytes, are not parsed
 * and serialized again: they stay what `JSON.stringify` wrote when the card was loaded (so byte
 * for byte what serializing the parsed components gives), and the `/cards` route puts that text
 * into the answer as it is. Read from Redis they are the stored UTF-8 bytes (the components' own
 * key, see card-codec.ts), decoded to text when first needed; the near cache keeps only the text,
 * so that the answer is one string, which Node writes to the socket without allocating a buffer
 * for it. The core sees one only as `PassThroughComponents`.
 *
 * `toJSON` keeps any generic `JSON.stringify` of a value holding one correct: it serializes as the
 * parsed components, giving the same bytes as the stored text.
 */
const NOT_LATIN1 = /[^\x00-\xff]/;

export class ComponentsJson {
  #text: string | undefined;
  #bytes: Buffer | undefined;

  constructor(text: string) {
    this.#text = text;
  }

  /** Holds the UTF-8 bytes read from Redis; the text is decoded from them when first needed. */
  static fromBytes(bytes: Buffer): ComponentsJson {
    const json = new ComponentsJson('');
    json.#text = undefined;
    json.#bytes = bytes;
    return json;
  }

  /** The JSON text (decoded once from the stored bytes). */
  get text(): string {
    this.#text ??= this.#bytes!.toString('utf8');
    return this.#text;
  }

  /** The UTF-8 bytes of the JSON. */
  get bytes(): Buffer {
    return this.#bytes ?? Buffer.from(this.#text!, 'utf8');
  }

  /**
   * About what the text occupies in memory: V8 keeps a string of Latin-1 characters in one byte
   * per character and any other in two (the near cache's size estimate).
   */
  get memoryBytes(): number {
    const text = this.text;
    return NOT_LATIN1.test(text) ? 2 * text.length : text.length;
  }

  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}
