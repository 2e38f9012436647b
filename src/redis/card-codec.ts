/**
 * How a card state is stored: its projection (everything but the components, small JSON) under
 * `keys.card`, and its components (the JSON array as the upstream gave it, most of the bytes)
 * under `keys.components`, written together by one command with one expiry. The warm path reads
 * both in one `MGET` and hands the components' bytes to the answer untouched; nothing parses them.
 */
import { z } from 'zod';
import type { CardComponent } from '../core/components.js';
import { ComponentsJson } from './components-json.js';
import type { CardState, ServedCardState } from '../core/card-state.js';
import { TtlSourceSchema } from '../core/effective-ttl.js';

/**
 * Shape check for projections read back from Redis (the envelope only: components were validated
 * when they were loaded from the upstream). A projection that fails it counts as absent. The
 * fields after `data` are written only when they are not null (see {@link encodeProjection});
 * projections written before that hold them as null, and read the same.
 */
const StoredProjection = z.object({
  data: z
    .object({
      ttlSeconds: z.number(),
      fetchedAt: z.number(),
      upstream: z.string(),
      ttlSource: TtlSourceSchema.optional(),
    })
    .nullable(),
  failure: z
    .object({ kind: z.enum(['retriable', 'integration']), at: z.number(), detail: z.string(), status: z.number().nullable() })
    .nullable()
    .default(null),
  invalidatedAt: z.number().nullable().default(null),
  customerEmail: z.string().nullable().default(null),
  customerExternalId: z.string().nullable().default(null),
});

/** A state as its projection key holds it: no components. */
export type CardProjection = z.infer<typeof StoredProjection>;

/**
 * The projection's JSON, without the fields that are null: a typical card has no failure, no
 * invalidation and no external id, and those 60 bytes were 2 % of its memory in Redis. Writers
 * compare what they read with what Redis holds (compare-and-set on the bytes read, not on this).
 */
export function encodeProjection(state: ServedCardState | CardProjection): string {
  const { data, failure, invalidatedAt, customerEmail, customerExternalId } = state;
  const stored: Record<string, unknown> = { data: null };
  if (data !== null) {
    const { ttlSeconds, fetchedAt, upstream, ttlSource } = data;
    stored.data = { ttlSeconds, fetchedAt, upstream, ...(ttlSource === undefined ? {} : { ttlSource }) };
  }
  if (failure !== null) stored.failure = failure;
  if (invalidatedAt !== null) stored.invalidatedAt = invalidatedAt;
  if (customerEmail !== null) stored.customerEmail = customerEmail;
  if (customerExternalId !== null) stored.customerExternalId = customerExternalId;
  return JSON.stringify(stored);
}

/** The components' JSON as stored (and served): what `JSON.stringify` writes. */
export function encodeComponents(components: readonly CardComponent[] | null): string {
  return JSON.stringify(components);
}

/** Decodes a projection; anything unreadable is treated as "nothing cached". */
export function decodeProjection(raw: string | Buffer | null): CardProjection | undefined {
  if (raw === null) return undefined;
  try {
    const parsed = StoredProjection.safeParse(JSON.parse(raw.toString()));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A whole card state (components parsed), for the worker, invalidation, the admin API. */
export function decodeCardState(projection: string | null, components: string | null): CardState | undefined {
  const state = decodeProjection(projection);
  if (state === undefined || state.data === null) return state === undefined ? undefined : { ...state, data: null };
  // A projection with data always has its components (one write, one expiry); else: absent.
  if (components === null) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(components);
  } catch {
    return undefined;
  }
  if (parsed !== null && !Array.isArray(parsed)) return undefined;
  return { ...state, data: { ...state.data, components: parsed as CardComponent[] | null } };
}

const NULL_JSON = Buffer.from('null');

/**
 * The warm path's decoder: like {@link decodeCardState}, but the components stay the bytes that
 * were stored (a {@link ComponentsJson}), which the `/cards` route copies into the answer.
 */
export function decodeForServing(projection: Buffer | null, components: Buffer | null): ServedCardState | undefined {
  const state = decodeProjection(projection);
  if (state === undefined || state.data === null) return state === undefined ? undefined : { ...state, data: null };
  if (components === null) return undefined;
  if (components.equals(NULL_JSON)) return { ...state, data: { ...state.data, components: null } };
  // Not an array (nothing this store writes): absent, as the full decoder has it.
  if (components[0] !== 0x5b /* [ */) return undefined;
  const json = ComponentsJson.fromBytes(components);
  return { ...state, data: { ...state.data, components: json } };
}
