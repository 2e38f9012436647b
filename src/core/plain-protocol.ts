/**
 * Plain's customer-card protocol (SPEC 2.1, 2.2): the request body Plain sends to `POST /cards`
 * (and cardproxy forwards to upstreams), and the classification of an upstream's response body by
 * Plain's own rules. Pure: no I/O; schemas are built once at module load.
 */
import { z } from 'zod';
import { CardComponentsSchema, type CardComponent } from './components.js';
import { describeZodIssues } from './describe-zod-issues.js';
import { EmailSchema, IdentifierSchema } from './identifiers.js';

/** The characters Plain allows in a card key, as a regular-expression class. */
const CARD_KEY_CHARS = '[a-zA-Z0-9_-]';
/** Characters allowed in a card key by Plain (`[a-zA-Z0-9_-]+`), anchored. */
export const CARD_KEY_PATTERN = new RegExp(`^${CARD_KEY_CHARS}+$`);
/** The longest card key accepted (in requests and in the configuration). */
export const CARD_KEY_MAX_LENGTH = 500;
/** {@link CARD_KEY_PATTERN} and the length in one test (every request checks every key with it). */
const CARD_KEY = new RegExp(`^${CARD_KEY_CHARS}{1,${CARD_KEY_MAX_LENGTH}}$`);

/** A card key as Plain allows it: 1 to 500 chars of `[a-zA-Z0-9_-]`. */
export const CardKeySchema = z.string().regex(CARD_KEY, {
  error: (issue) =>
    typeof issue.input === 'string' && (issue.input.length === 0 || issue.input.length > CARD_KEY_MAX_LENGTH)
      ? `card keys must be 1 to ${CARD_KEY_MAX_LENGTH} characters long`
      : 'card keys may only contain letters, digits, "-" and "_"',
});

/** A card key (validated by {@link CardKeySchema}). */
export type CardKey = z.output<typeof CardKeySchema>;

const ExternalRef = z.object({
  id: IdentifierSchema,
  externalId: IdentifierSchema.nullish(),
});

/** Card keys one request may ask for. */
export const MAX_CARD_KEYS = 25;

/**
 * The body Plain POSTs to a card API. `email`, `externalId`, `thread` and `tenant` may be `null`
 * or absent (Plain sends explicit nulls; `thread` is `null` outside a thread); `timestamp` is
 * sent by Plain but undocumented, so it is kept as-is. Unknown extra fields anywhere are accepted
 * and stripped, so new fields from Plain never break parsing.
 */
export const CardsRequestSchema = z.object({
  cardKeys: z.array(CardKeySchema).min(1).max(MAX_CARD_KEYS),
  customer: z.object({
    id: IdentifierSchema.min(1),
    email: EmailSchema.nullish(),
    externalId: IdentifierSchema.nullish(),
  }),
  thread: ExternalRef.nullish(),
  tenant: ExternalRef.nullish(),
  timestamp: z.unknown().optional(),
});

/** A validated (and stripped) card request body. */
export type CardsRequest = z.output<typeof CardsRequestSchema>;

/** One card of an upstream response, validated; `key` is checked separately. */
const UpstreamCardSchema = z.object({
  timeToLiveSeconds: z.int().min(0).nullish(),
  components: CardComponentsSchema.nullable(),
});

/**
 * The most a card's components may weigh (serialized): it is stored, logged in the event stream
 * and sent to Plain on every load. Plain rejects cards that are too big with a limit it does not
 * document; half a megabyte is far beyond any card an agent can read.
 */
export const MAX_CARD_BYTES = 512 * 1024;

/** At most this many issue lines go into one card's failure detail. */
const MAX_DETAIL_ISSUES = 5;

/**
 * The verdict on one requested card of an upstream response: its validated components (`null`:
 * "no data") and optional TTL override, or the reason Plain would record an integration error.
 */
export type UpstreamCardResult =
  | { ok: true; components: CardComponent[] | null; timeToLiveSeconds: number | null }
  | { ok: false; detail: string };

/**
 * The verdict on a whole upstream response body: a broken envelope fails every key of the call,
 * otherwise there is one {@link UpstreamCardResult} per requested key.
 */
export type UpstreamResponseResult =
  | { ok: true; cards: Map<string, UpstreamCardResult> }
  | { ok: false; detail: string };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Classifies a parsed upstream response body by Plain's rules (SPEC 2.2), for the keys that were
 * requested from that upstream. A body that is not an object or has no `cards` array is a broken
 * envelope. Otherwise each requested key gets its own verdict: missing from `cards` or failing the
 * card schema (components, `timeToLiveSeconds` absent/null/integer ≥ 0) fails that key only.
 * Extra cards and entries without a string `key` are ignored; if a key appears twice, the first
 * wins. Only the cards that were asked for are validated.
 */
export function parseUpstreamResponse(body: unknown, requestedKeys: readonly string[]): UpstreamResponseResult {
  if (!isPlainObject(body)) {
    return { ok: false, detail: `response body is not a JSON object (got ${describeType(body)})` };
  }
  const cards = body['cards'];
  if (!Array.isArray(cards)) {
    return { ok: false, detail: `response body has no "cards" array (got ${describeType(cards)})` };
  }

  const wanted = new Set(requestedKeys);
  const firstIndex = new Map<string, number>();
  for (let i = 0; i < cards.length && firstIndex.size < wanted.size; i++) {
    const card: unknown = cards[i];
    if (!isPlainObject(card)) continue;
    const key = card['key'];
    if (typeof key === 'string' && wanted.has(key) && !firstIndex.has(key)) firstIndex.set(key, i);
  }

  const results = new Map<string, UpstreamCardResult>();
  for (const key of requestedKeys) {
    if (results.has(key)) continue;
    const index = firstIndex.get(key);
    if (index === undefined) {
      results.set(key, { ok: false, detail: `card "${key}" missing from response` });
      continue;
    }
    const parsed = UpstreamCardSchema.safeParse(cards[index]);
    const size = parsed.success ? Buffer.byteLength(JSON.stringify(parsed.data.components)) : 0;
    if (size > MAX_CARD_BYTES) {
      results.set(key, { ok: false, detail: `card "${key}" is ${size} bytes of components, more than the ${MAX_CARD_BYTES} allowed per card` });
    } else if (parsed.success) {
      results.set(key, {
        ok: true,
        components: parsed.data.components,
        timeToLiveSeconds: parsed.data.timeToLiveSeconds ?? null,
      });
    } else {
      results.set(key, { ok: false, detail: summarize(describeZodIssues(parsed.error, ['cards', index])) });
    }
  }
  return { ok: true, cards: results };
}

function summarize(lines: string[]): string {
  if (lines.length <= MAX_DETAIL_ISSUES) return lines.join('; ');
  return `${lines.slice(0, MAX_DETAIL_ISSUES).join('; ')}; and ${lines.length - MAX_DETAIL_ISSUES} more issue(s)`;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
