/**
 * A card's components as the JSON they were stored as in the cache.
 *
 * On a warm `/cards` hit the components, which are most of a cached card's bytes, are not parsed
 * and serialized again: they stay what `JSON.stringify` wrote when the card was loaded (so byte
 * for byte what serializing the parsed components gives), and the `/cards` route copies those
 * bytes into the answer as they are. Values read from Redis and kept in the near cache hold only
 * the UTF-8 bytes (the components' own key, see card-codec.ts). The core sees one only as
 * `PassThroughComponents`.
 *
 * `toJSON` keeps any generic `JSON.stringify` of a value holding one correct: it serializes as the
 * parsed components, giving the same bytes as the stored text.
 */
export class ComponentsJson {
  #text: string | undefined;
  #bytes: Buffer | undefined;

  constructor(text: string) {
    this.#text = text;
  }

  /** Holds only `bytes` (UTF-8 JSON): what the near cache keeps. */
  static fromBytes(bytes: Buffer): ComponentsJson {
    const json = new ComponentsJson('');
    json.#text = undefined;
    json.#bytes = bytes;
    return json;
  }

  get text(): string {
    return this.#text ?? this.#bytes!.toString('utf8');
  }

  /** The UTF-8 bytes of the JSON. */
  get bytes(): Buffer {
    return this.#bytes ?? Buffer.from(this.#text!, 'utf8');
  }

  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}
