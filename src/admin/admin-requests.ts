/**
 * What operators may ask of the admin API and the admin CLI commands (SPEC section 7), as zod
 * schemas shared by both surfaces, so a bad request is named the same way wherever it comes from.
 */
import { z } from 'zod';
import { CARD_EVENT_TYPES } from '../core/card-events.js';
import { CardKeySchema } from '../core/plain-protocol.js';
import { boundedText, EmailSchema, IdentifierSchema } from '../core/identifiers.js';

/** The longest TTL override accepted: ten years keeps every derived expiry a valid Redis PX. */
export const MAX_TTL_OVERRIDE_SECONDS = 315_360_000;

/** `PUT /admin/cards/:key/ttl` and `ttl set KEY SECONDS`. */
export const TtlOverrideRequestSchema = z.strictObject({
  ttlSeconds: z
    .number({ error: 'must be an integer of at least 1' })
    .int({ error: 'must be an integer of at least 1' })
    .min(1, { error: 'must be an integer of at least 1' })
    .max(MAX_TTL_OVERRIDE_SECONDS, { error: `must be at most ${MAX_TTL_OVERRIDE_SECONDS} (ten years)` }),
});
export type TtlOverrideRequest = z.output<typeof TtlOverrideRequestSchema>;

/** The identifiers a customer's cached cards can be found by. */
export const CUSTOMER_SELECTORS = ['customerId', 'email', 'externalId'] as const;
export type CustomerSelectorKind = (typeof CUSTOMER_SELECTORS)[number];

const identifier = IdentifierSchema.min(1, 'must not be empty');

type SelectorFields = { readonly [K in CustomerSelectorKind]?: string | null | undefined };

/** A zod check: exactly one of `customerId`, `email`, `externalId` is given (`null` counts as absent). */
function requireOneSelector(ctx: z.core.ParsePayload<SelectorFields>): void {
  const given = CUSTOMER_SELECTORS.filter((name) => ctx.value[name] !== undefined && ctx.value[name] !== null);
  if (given.length === 1) return;
  ctx.issues.push({
    code: 'custom',
    input: ctx.value,
    path: given.length === 0 ? [] : [given[1]!],
    message:
      given.length === 0
        ? 'exactly one of customerId, email or externalId is required'
        : `exactly one of customerId, email or externalId is allowed (got ${given.join(', ')})`,
  });
}

/** The one selector a value that passed {@link requireOneSelector} gives. */
function selectorOf(fields: SelectorFields): { kind: CustomerSelectorKind; value: string } {
  const kind = CUSTOMER_SELECTORS.find((name) => fields[name] !== undefined && fields[name] !== null)!;
  return { kind, value: fields[kind]! };
}

/**
 * `POST /admin/invalidate` and `invalidate`: exactly one of `customerId`, `email`, `externalId`
 * (`null` counts as absent), optionally narrowed to a workspace and to some card keys.
 */
export const InvalidateRequestSchema = z
  .strictObject({
    customerId: identifier.nullish(),
    email: identifier.nullish(),
    externalId: identifier.nullish(),
    workspaceId: identifier.nullish(),
    cardKeys: z.array(CardKeySchema).min(1, 'must list at least one card key').max(100, 'may list at most 100 card keys').nullish(),
    refresh: z.boolean().default(false),
    reason: boundedText(500).min(1, 'must not be empty').optional(),
  })
  .check(requireOneSelector)
  .transform((body) => {
    const selector = selectorOf(body);
    return {
      selector,
      workspaceId: body.workspaceId ?? null,
      cardKeys: body.cardKeys ?? null,
      refresh: body.refresh,
      reason: body.reason ?? `operator invalidation by ${selector.kind}`,
    };
  });
export type InvalidateRequest = z.output<typeof InvalidateRequestSchema>;

/** `GET /admin/events` and `events`: query-string values, so `limit` arrives as text. */
export const EventQuerySchema = z.object({
  customerId: identifier.optional(),
  cardKey: identifier.optional(),
  type: z.enum(CARD_EVENT_TYPES, { error: `must be one of ${CARD_EVENT_TYPES.join(', ')}` }).optional(),
  limit: z
    .string()
    .regex(/^\d+$/, 'must be an integer between 1 and 1000')
    .transform(Number)
    .pipe(z.number().int().min(1, 'must be an integer between 1 and 1000').max(1000, 'must be an integer between 1 and 1000'))
    .default(100),
});
export type EventQuery = z.output<typeof EventQuerySchema>;

/** `GET /admin/customers`: the console's customer search, by exactly one identifier. */
export const CustomerSearchSchema = z
  .strictObject({
    customerId: identifier.optional(),
    email: identifier.optional(),
    externalId: identifier.optional(),
    workspaceId: identifier.optional(),
  })
  .check(requireOneSelector)
  .transform((query) => ({ selector: selectorOf(query), workspaceId: query.workspaceId ?? null }));
export type CustomerSearch = z.output<typeof CustomerSearchSchema>;

/** `GET /admin/customers/:customerId/cards`: the workspace the customer belongs to. */
export const CustomerCardsQuerySchema = z.strictObject({ workspaceId: identifier });

/** The most customers one `POST /admin/warm` may name (the CLI sends a big file in such batches). */
export const MAX_WARM_CUSTOMERS = 1000;

/** One customer to warm: a line of a `warm --file` file, or an item of `POST /admin/warm`. */
export const WarmCustomerSchema = z.strictObject({
  id: identifier,
  email: EmailSchema.min(1, 'must not be empty').nullish(),
  externalId: identifier.nullish(),
});

/** `POST /admin/warm` and `warm` (SPEC 10.2). */
export const WarmRequestSchema = z
  .strictObject({
    workspaceId: identifier,
    customers: z
      .array(WarmCustomerSchema)
      .min(1, 'must list at least one customer')
      .max(MAX_WARM_CUSTOMERS, `may list at most ${MAX_WARM_CUSTOMERS} customers`),
    threadId: identifier.nullish(),
    cardKeys: z.array(CardKeySchema).min(1, 'must list at least one card key').max(100, 'may list at most 100 card keys').nullish(),
  })
  .transform((body) => ({
    workspaceId: body.workspaceId,
    customers: body.customers.map((c) => ({ id: c.id, email: c.email ?? null, externalId: c.externalId ?? null })),
    threadId: body.threadId ?? null,
    cardKeys: body.cardKeys ?? null,
  }));
export type WarmRequest = z.output<typeof WarmRequestSchema>;
