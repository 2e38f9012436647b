/**
 * `POST /cards`: Plain's customer-card protocol. Checks run in SPEC order: size (Fastify's body
 * limit, 413), signature over the raw bytes (401), then JSON and schema (400).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { CardsRequestSchema, type CardsRequest } from '../../core/plain-protocol.js';
import { describeZodIssues } from '../../core/describe-zod-issues.js';
import { verifySignature } from '../../core/signature.js';
import { ComponentsJson } from '../../redis/components-json.js';
import type { CardResolver, PlainCard, Resolution } from '../../service/card-resolver.js';
import { sendError, type ErrorBody } from '../errors.js';
import { CACHE_STATUS_HEADER, CacheStatusHeaders } from '../cache-status.js';
import { cardsLineWriter } from '../../observability/cards-line.js';
import { AnswerMemory, type AnswerBytes } from '../answer-memory.js';

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

/**
 * A `/cards` answer: the cards, or the error answer (SPEC 9) of a request that is refused. The
 * cards' `written` is to be called once `body` has been written completely (see answer-memory.ts).
 */
export type CardsAnswer =
  | { readonly status: 200; readonly cacheStatus: string; readonly body: Buffer; readonly written: (() => void) | undefined }
  | { readonly status: 400 | 401; readonly error: ErrorBody };

/**
 * The work of `POST /cards` once its body is read: checks, resolution, the request's log line and
 * the answer's bytes. The one implementation behind both ways a request reaches it: the Fastify
 * route, and the lean path in front of Fastify (lean-cards.ts). Synchronous (no promise) when the
 * resolver answers at once (a warm multi-key request served from the near cache).
 */
export class CardsEndpoint {
  readonly #opts: CardsRouteOptions;
  readonly #writeCardsLine: ReturnType<typeof cardsLineWriter>;
  readonly #memory = new AnswerMemory();
  readonly #cacheStatus = new CacheStatusHeaders();

  constructor(opts: CardsRouteOptions, log: Logger) {
    this.#opts = opts;
    this.#writeCardsLine = cardsLineWriter(log);
  }

  /** `queuedMs`: how long the request may have waited before it was read (request-intake.ts). */
  answer(raw: Buffer, headers: IncomingHttpHeaders, reqId: string, receivedAt: number, queuedMs: number): CardsAnswer | Promise<CardsAnswer> {
    // Read per request: a reloaded configuration may add or retire a secret.
    const signingSecrets = this.#opts.signingSecrets;
    if (signingSecrets.length > 0) {
      const signature = headers['plain-request-signature'];
      if (!verifySignature(signingSecrets, raw, typeof signature === 'string' ? signature : undefined)) {
        return refused(401, 'invalid_signature', 'missing or invalid Plain-Request-Signature header');
      }
    }
    const workspaceId = headers['plain-workspace-id'];
    if (typeof workspaceId !== 'string' || !WORKSPACE_ID.test(workspaceId)) {
      return refused(400, 'missing_workspace_id', 'the Plain-Workspace-Id header is required (1-200 visible ASCII characters)');
    }
    const json = decodeJsonObject(raw);
    if (!json.ok) return refused(400, json.error, json.message);
    const parsed = CardsRequestSchema.safeParse(json.value);
    if (!parsed.success) return refused(400, 'invalid_request', describeZodIssues(parsed.error).join('; '));
    const request = parsed.data;
    const result = this.#opts.resolver.resolve(workspaceId, request, receivedAt, queuedMs);
    if (result instanceof Promise) return result.then((resolved) => this.#answered(reqId, workspaceId, request, resolved));
    return this.#answered(reqId, workspaceId, request, result);
  }

  #answered(reqId: string, workspaceId: string, request: CardsRequest, result: Resolution): CardsAnswer {
    this.#writeCardsLine({
      reqId,
      workspaceId,
      customerId: request.customer.id,
      threadId: request.thread?.id ?? null,
      keys: result.outcomes,
      degraded: result.degraded,
    });
    const { bytes, written } = serializeCardsAnswer({ cards: result.cards }, this.#memory);
    return { status: 200, cacheStatus: this.#cacheStatus.valueFor(request.cardKeys, result.outcomes), body: bytes, written };
  }
}

function refused(status: 400 | 401, error: string, message: string): CardsAnswer {
  return { status, error: { error, message } };
}

export const CARDS_CONTENT_TYPE = 'application/json; charset=utf-8';

export async function cardsRoutes(app: FastifyInstance, opts: { readonly endpoint: CardsEndpoint }): Promise<void> {
  const { endpoint } = opts;
  // The signature covers the bytes as received, so this scope takes every body raw.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));

  app.post('/cards', async (request: FastifyRequest, reply: FastifyReply) => {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const answer = await endpoint.answer(raw, request.headers, request.id, request.receivedAt, request.queuedMs);
    if (answer.status !== 200) return sendError(reply, answer.status, answer.error.error, answer.error.message);
    if (answer.written) reply.raw.once('finish', answer.written);
    return reply.type(CARDS_CONTENT_TYPE).header(CACHE_STATUS_HEADER, answer.cacheStatus).send(answer.body);
  });
}

/**
 * The `/cards` answer, byte for byte what `JSON.stringify({ cards })` gives, assembled as bytes:
 * components answered straight from the cache are copied in as the UTF-8 JSON they were stored
 * as instead of being parsed and serialized again (most of a warm request's work otherwise). (As
 * one string instead, Node would encode all of it to UTF-8 again when writing it: slower.) The
 * bytes come from `memory` (answer-memory.ts): call `written` once they have been written.
 */
export function serializeCardsAnswer(payload: { cards: readonly PlainCard[] }, memory: AnswerMemory): AnswerBytes {
  const { cards } = payload;
  // Each card is an ASCII head (keys are schema-checked, ^[a-zA-Z0-9_-]+$, and TTLs integers)
  // followed by its components' bytes; the answer is written into memory of the exact size.
  const heads = new Array<string>(cards.length);
  const bodies = new Array<Buffer>(cards.length);
  let length = OPEN.length + CLOSE.length;
  for (let i = 0; i < cards.length; i++) {
    const card = cards[i]!;
    const components = card.components instanceof ComponentsJson ? card.components.bytes : Buffer.from(JSON.stringify(card.components), 'utf8');
    // Quoted as is: a key needs no escaping, and an integer is written by JSON as by String.
    const head = `${i === 0 ? '{"key":"' : ',{"key":"'}${card.key}","timeToLiveSeconds":${card.timeToLiveSeconds},"components":`;
    heads[i] = head;
    bodies[i] = components;
    length += head.length + components.length + 1;
  }
  const answer = memory.take(length);
  const out = answer.bytes;
  let at = OPEN.copy(out, 0);
  for (let i = 0; i < cards.length; i++) {
    at += out.write(heads[i]!, at, 'latin1');
    at += bodies[i]!.copy(out, at);
    out[at++] = 0x7d; // }
  }
  CLOSE.copy(out, at);
  return answer;
}

const OPEN = Buffer.from('{"cards":[');
const CLOSE = Buffer.from(']}');
