/**
 * `POST /cards`: Plain's customer-card protocol. Checks run in SPEC order: size (Fastify's body
 * limit, 413), signature over the raw bytes (401), then JSON and schema (400).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { CardsRequestSchema } from '../../core/plain-protocol.js';
import { describeZodIssues } from '../../core/describe-zod-issues.js';
import { verifySignature } from '../../core/signature.js';
import { ComponentsJson } from '../../redis/components-json.js';
import type { CardResolver, PlainCard } from '../../service/card-resolver.js';
import { sendError } from '../errors.js';
import { CACHE_STATUS_HEADER, cacheStatusHeader } from '../cache-status.js';
import { cardsLineWriter } from '../../observability/cards-line.js';

export interface CardsRouteOptions {
  readonly resolver: CardResolver;
  readonly signingSecrets: readonly string[];
}

export const MAX_BODY_BYTES = 1_048_576;

const WORKSPACE_ID = /^[\x21-\x7e]{1,200}$/;

/** JSON is UTF-8 (RFC 8259 8.1): bytes that are not are not JSON, never silently replaced by U+FFFD. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A raw body as a JSON object, or the 400 error code and message saying why it is not one. */
export function decodeJsonObject(
  raw: Buffer,
): { ok: true; value: Record<string, unknown> } | { ok: false; error: 'invalid_json' | 'invalid_body'; message: string } {
  let json: unknown;
  try {
    json = JSON.parse(UTF8.decode(raw));
  } catch {
    return { ok: false, error: 'invalid_json', message: 'request body is not valid JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, error: 'invalid_body', message: 'request body must be a JSON object' };
  }
  return { ok: true, value: json as Record<string, unknown> };
}

export async function cardsRoutes(app: FastifyInstance, opts: CardsRouteOptions): Promise<void> {
  const { resolver } = opts;
  const writeCardsLine = cardsLineWriter(app.log as Logger);
  // The signature covers the bytes as received, so this scope takes every body raw.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));

  app.post('/cards', async (request: FastifyRequest, reply: FastifyReply) => {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    // Read per request: a reloaded configuration may add or retire a secret.
    const signingSecrets = opts.signingSecrets;
    if (signingSecrets.length > 0) {
      const signature = request.headers['plain-request-signature'];
      if (!verifySignature(signingSecrets, raw, typeof signature === 'string' ? signature : undefined)) {
        return sendError(reply, 401, 'invalid_signature', 'missing or invalid Plain-Request-Signature header');
      }
    }
    const workspaceId = request.headers['plain-workspace-id'];
    if (typeof workspaceId !== 'string' || !WORKSPACE_ID.test(workspaceId)) {
      return sendError(reply, 400, 'missing_workspace_id', 'the Plain-Workspace-Id header is required (1-200 visible ASCII characters)');
    }
    const json = decodeJsonObject(raw);
    if (!json.ok) return sendError(reply, 400, json.error, json.message);
    const parsed = CardsRequestSchema.safeParse(json.value);
    if (!parsed.success) {
      return sendError(reply, 400, 'invalid_request', describeZodIssues(parsed.error).join('; '));
    }
    const result = await resolver.resolve(workspaceId, parsed.data, request.receivedAt);
    writeCardsLine({
      reqId: request.id,
      workspaceId,
      customerId: parsed.data.customer.id,
      threadId: parsed.data.thread?.id ?? null,
      keys: result.outcomes,
      degraded: result.degraded,
    });
    return reply
      .type('application/json; charset=utf-8')
      .header(CACHE_STATUS_HEADER, cacheStatusHeader(parsed.data.cardKeys, result.outcomes))
      .send(serializeCardsAnswer({ cards: result.cards }));
  });
}

/**
 * The `/cards` answer, exactly what `JSON.stringify({ cards })` gives: components answered straight
 * from the cache are put in as the JSON text they were stored as instead of being parsed and
 * serialized again (most of a warm request's work otherwise). A string, not a buffer: Node writes
 * a string answer together with its headers in one write, with no buffer allocated for it.
 */
export function serializeCardsAnswer(payload: { cards: readonly PlainCard[] }): string {
  const { cards } = payload;
  let out = '{"cards":[';
  for (let i = 0; i < cards.length; i++) {
    const card = cards[i]!;
    const components = card.components instanceof ComponentsJson ? card.components.text : JSON.stringify(card.components);
    out += `${i === 0 ? '' : ','}{"key":${JSON.stringify(card.key)},"timeToLiveSeconds":${JSON.stringify(card.timeToLiveSeconds)},"components":${components}}`;
  }
  return `${out}]}`;
}
