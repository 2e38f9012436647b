/**
 * A card's components as the JSON text they were stored as in the cache.
 *
 * On a warm `/cards` hit the components, which are most of a cached card's bytes, are not parsed
 * and serialized again: they stay the text that `JSON.stringify` wrote when the card was loaded
 * (so byte for byte what serializing the parsed components gives), and the `/cards` route writes
 * that text as it is. That halves the work of a warm request.
 *
 * `toJSON` keeps any generic `JSON.stringify` of a value holding one correct: it serializes as the
 * parsed components, giving the same bytes as the stored text.
 */
export class ComponentsJson {
  constructor(readonly text: string) {}

  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}
