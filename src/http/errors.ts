/**
 * Every error answer is JSON `{ error, message }` (SPEC section 9): a stable machine code and a
 * human sentence. Messages of 5xx answers are generic, so internals never reach a client.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

export interface ErrorBody {
  readonly error: string;
  readonly message: string;
}

/** The error answer each reply carried, for the rejected-request log line. */
const sentErrors = new WeakMap<FastifyReply, ErrorBody>();

/** The `{ error, message }` this reply was answered with, if it was an error answer. */
export function errorAnswerOf(reply: FastifyReply): ErrorBody | undefined {
  return sentErrors.get(reply);
}

/** The answer to a request that failed unexpectedly (500): nothing of the failure reaches the client. */
export const INTERNAL_ERROR: ErrorBody = Object.freeze({ error: 'internal_error', message: 'internal error' });

export function sendError(reply: FastifyReply, status: number, error: string, message: string): FastifyReply {
  sentErrors.set(reply, { error, message });
  return reply.code(status).type('application/json; charset=utf-8').send({ error, message } satisfies ErrorBody);
}

/** Fastify's own errors (body limit, content type, …) mapped to our codes. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_body',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_VALIDATION: 'invalid_request',
};

export function handleError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
  if (status >= 500) {
    request.log.error({ err }, 'request failed');
    return sendError(reply, status, INTERNAL_ERROR.error, INTERNAL_ERROR.message);
  }
  const code = (err.code && FASTIFY_CODES[err.code]) ?? (status === 413 ? 'payload_too_large' : 'bad_request');
  const message = status === 413 ? 'request body is larger than 1 MiB (1,048,576 bytes)' : err.message;
  return sendError(reply, status, code, message);
}

export function handleNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendError(reply, 404, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`);
}
