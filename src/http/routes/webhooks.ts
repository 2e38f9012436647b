/**
 * `POST /webhooks/plain`: Plain's webhooks (SPEC 10.1). Checks in SPEC order: size (Fastify's
 * body limit, 413), signature over the raw bytes with the `/cards` secrets (401), JSON and
 * envelope (400), delivery timestamp within `warming.webhookToleranceSeconds` (401
 * `stale_webhook`). Then `200` at once: what the delivery asks for runs after the answer. Event
 * types cardproxy does not act on are `200` too (anything else makes Plain retry for days).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../../core/clock.js';
import { describeZodIssues } from '../../core/describe-zod-issues.js';
import { isTimely, webhookAction, webhookTypeLabel, WebhookEnvelopeSchema } from '../../core/plain-webhook.js';
import { verifySignature } from '../../core/signature.js';
import type { Metrics } from '../../observability/metrics.js';
import type { PlainWebhooks } from '../../warming/plain-webhooks.js';
import { handleError, sendError } from '../errors.js';
import { decodeJsonObject, MAX_BODY_BYTES } from './cards.js';

export interface WebhookRouteOptions {
  readonly webhooks: PlainWebhooks;
  readonly clock: Clock;
  readonly metrics: Metrics;
  /** Read per request: a reloaded configuration may change them. */
  readonly settings: () => { readonly signingSecrets: readonly string[]; readonly webhookEvents: readonly string[]; readonly toleranceSeconds: number };
}

type Outcome = 'accepted' | 'duplicate' | 'ignored' | 'rejected';

export async function webhookRoutes(app: FastifyInstance, opts: WebhookRouteOptions): Promise<void> {
  const { webhooks, clock, metrics } = opts;
  const count = (type: string, outcome: Outcome) => metrics.webhooks.inc({ type, outcome });

  // The signature covers the bytes as received, so this scope takes every body raw.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if ((err.statusCode ?? 500) < 500) count('other', 'rejected');
    return handleError(err, request, reply);
  });

  app.post('/webhooks/plain', async (request: FastifyRequest, reply: FastifyReply) => {
    const settings = opts.settings();
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (settings.signingSecrets.length > 0) {
      const signature = request.headers['plain-request-signature'];
      if (!verifySignature(settings.signingSecrets, raw, typeof signature === 'string' ? signature : undefined)) {
        count('other', 'rejected');
        return sendError(reply, 401, 'invalid_signature', 'missing or invalid Plain-Request-Signature header');
      }
    }
    const json = decodeJsonObject(raw);
    if (!json.ok) {
      count('other', 'rejected');
      return sendError(reply, 400, json.error, json.message);
    }
    const rawType = typeof json.value.type === 'string' ? json.value.type : undefined;
    const parsed = WebhookEnvelopeSchema.safeParse(json.value);
    if (!parsed.success) {
      count(webhookTypeLabel(rawType, settings.webhookEvents), 'rejected');
      return sendError(reply, 400, 'invalid_request', describeZodIssues(parsed.error).join('; '));
    }
    const envelope = parsed.data;
    const type = webhookTypeLabel(envelope.type, settings.webhookEvents);
    const deliveredAt = envelope.webhookMetadata.webhookDeliveryAttemptTimestamp;
    if (!isTimely(clock.now(), deliveredAt, settings.toleranceSeconds)) {
      count(type, 'rejected');
      request.log.warn({ deliveryId: envelope.id, type: envelope.type, deliveredAt }, 'webhook refused: delivery timestamp outside the tolerance');
      return sendError(reply, 401, 'stale_webhook', `webhookDeliveryAttemptTimestamp is more than ${settings.toleranceSeconds} s from now`);
    }
    const action = webhookAction(envelope, settings.webhookEvents);
    if (action.kind === 'invalid') {
      count(type, 'rejected');
      return sendError(reply, 400, 'invalid_request', action.detail);
    }
    let outcome: Outcome = 'ignored';
    if (action.kind !== 'ignore') {
      try {
        outcome = (await webhooks.firstDelivery(envelope.id)) ? 'accepted' : 'duplicate';
      } catch (err) {
        // Not remembered, so not acted on: Plain delivers it again later.
        request.log.warn({ err, deliveryId: envelope.id }, 'webhook not accepted: Redis is unreachable');
        count(type, 'rejected');
        return sendError(reply, 503, 'unavailable', 'Redis is unreachable; the delivery will be retried');
      }
    }
    count(type, outcome);
    request.log.info({ deliveryId: envelope.id, type: envelope.type, workspaceId: envelope.workspaceId, outcome }, 'webhook received');
    if (outcome === 'accepted') webhooks.act(envelope.id, envelope.type, action);
    return { outcome };
  });
}
