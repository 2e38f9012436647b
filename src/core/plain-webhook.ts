/**
 * Plain's webhooks as cardproxy reads them (SPEC 10.1): the envelope, and the few payload fields
 * warming and invalidation need. Only those are parsed, so a new payload version with more (or
 * other) fields does not break anything. Pure.
 */
import { z } from 'zod';
import { describeZodIssues } from './describe-zod-issues.js';
import { EmailSchema, IdentifierSchema } from './identifiers.js';

const Id = IdentifierSchema.min(1, 'must not be empty');

/** The envelope: extra fields are ignored; `payload` is read per event type below. */
export const WebhookEnvelopeSchema = z.object({
  id: Id,
  type: z.string().min(1).max(200),
  workspaceId: Id,
  payload: z.record(z.string(), z.unknown()),
  webhookMetadata: z.object({ webhookDeliveryAttemptTimestamp: z.iso.datetime({ offset: true }) }),
});
export type WebhookEnvelope = z.infer<typeof WebhookEnvelopeSchema>;

/** A customer as webhook payloads carry it: `email` is an object `{ email, isVerified }`. */
const WebhookCustomerSchema = z.object({
  id: Id,
  email: z.object({ email: EmailSchema }).nullish(),
  externalId: IdentifierSchema.nullish(),
});

const ThreadPayloadSchema = z.object({
  thread: z.object({ id: Id, externalId: IdentifierSchema.nullish(), customer: WebhookCustomerSchema }),
});

const CustomerPayloadSchema = z.object({ customer: WebhookCustomerSchema });

/** The customer events that invalidate the customer's cached cards. */
export const CUSTOMER_UPDATE_EVENTS = ['customer.customer_updated', 'customer.customer_changed'] as const;

export interface WebhookCustomer {
  readonly id: string;
  readonly email: string | null;
  readonly externalId: string | null;
}

/** What a delivery asks of cardproxy. */
export type WebhookAction =
  | { readonly kind: 'warm'; readonly workspaceId: string; readonly customer: WebhookCustomer; readonly thread: { id: string; externalId: string | null } }
  | { readonly kind: 'invalidate'; readonly workspaceId: string; readonly customer: WebhookCustomer }
  | { readonly kind: 'ignore' }
  | { readonly kind: 'invalid'; readonly detail: string };

/**
 * The `type` label of cardproxy_webhooks_total: the event type when cardproxy acts on it, else
 * `other` (label values never come from request data otherwise).
 */
export function webhookTypeLabel(type: string | undefined, webhookEvents: readonly string[]): string {
  if (type === undefined) return 'other';
  return webhookEvents.includes(type) || (CUSTOMER_UPDATE_EVENTS as readonly string[]).includes(type) ? type : 'other';
}

/** What to do with an accepted delivery. */
export function webhookAction(envelope: WebhookEnvelope, webhookEvents: readonly string[]): WebhookAction {
  const { type, workspaceId, payload } = envelope;
  if (webhookEvents.includes(type)) {
    const parsed = ThreadPayloadSchema.safeParse(payload);
    if (!parsed.success) return { kind: 'invalid', detail: issues(parsed.error) };
    const { thread } = parsed.data;
    return { kind: 'warm', workspaceId, customer: customerOf(thread.customer), thread: { id: thread.id, externalId: thread.externalId ?? null } };
  }
  if ((CUSTOMER_UPDATE_EVENTS as readonly string[]).includes(type)) {
    const parsed = CustomerPayloadSchema.safeParse(payload);
    if (!parsed.success) return { kind: 'invalid', detail: issues(parsed.error) };
    return { kind: 'invalidate', workspaceId, customer: customerOf(parsed.data.customer) };
  }
  return { kind: 'ignore' };
}

/** True when a delivery timestamp is within `toleranceSeconds` of `now` (either way). */
export function isTimely(now: number, deliveryAttemptTimestamp: string, toleranceSeconds: number): boolean {
  return Math.abs(now - Date.parse(deliveryAttemptTimestamp)) <= toleranceSeconds * 1000;
}

function customerOf(customer: z.infer<typeof WebhookCustomerSchema>): WebhookCustomer {
  return { id: customer.id, email: customer.email?.email ?? null, externalId: customer.externalId ?? null };
}

function issues(error: z.ZodError): string {
  return describeZodIssues(error, ['payload']).join('; ');
}
