/**
 * The operator's admin API (SPEC section 7), registered under `/admin` only when `admin.token` is
 * configured (otherwise the whole tree answers `404`). Every request, known route or not, must
 * carry `Authorization: Bearer <admin.token>` (else `401`) before anything else happens. Bodies
 * are JSON whatever their content type (so a plain `curl -d` works) and validated with zod.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { describeZodIssues } from '../../core/describe-zod-issues.js';
import { bearerTokenMatches } from '../../admin/admin-token.js';
import type { AdminOperations } from '../../admin/admin-operations.js';
import {
  CustomerCardsQuerySchema,
  CustomerSearchSchema,
  EventQuerySchema,
  InvalidateRequestSchema,
  TtlOverrideRequestSchema,
  WarmRequestSchema,
} from '../../admin/admin-requests.js';
import type { Overview } from '../../observability/overview.js';
import { handleError, sendError } from '../errors.js';
import { MAX_BODY_BYTES } from './cards.js';

/** The configured admin token and the operations the routes expose. */
export interface AdminRouteOptions {
  readonly token: string;
  readonly operations: AdminOperations;
  /** This process's metrics, summarized for the console's live overview (`GET /admin/overview`). */
  readonly overview?: () => Promise<Overview>;
}

type Parsed<T> = { ok: true; value: T } | { ok: false };

/** The `/admin` routes (register with `prefix: '/admin'`); see the module comment. */
export async function adminRoutes(app: FastifyInstance, opts: AdminRouteOptions): Promise<void> {
  const { token, operations } = opts;

  // Every operation needs Redis: while it is down, say so (503) rather than "internal error".
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if ((err.statusCode ?? 500) >= 500 && !operations.redisReady) {
      return sendError(reply, 503, 'unavailable', 'Redis is unreachable; admin operations need it. Retry when /readyz answers 200.');
    }
    return handleError(err, request, reply);
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async (request, reply) => {
    if (!bearerTokenMatches(request.headers.authorization, token)) {
      void reply.header('www-authenticate', 'Bearer realm="cardproxy admin"');
      return sendError(reply, 401, 'unauthorized', 'the admin API needs Authorization: Bearer <admin.token>');
    }
    return undefined;
  });

  app.setNotFoundHandler((request, reply) => sendError(reply, 404, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`));

  app.get('/cards', async () => ({ cards: await operations.listCards() }));

  app.put('/cards/:key/ttl', async (request, reply) => {
    const key = (request.params as { key: string }).key;
    if (!operations.isKnownCard(key)) return unknownCard(reply, key);
    const body = parseBody(request, reply, TtlOverrideRequestSchema);
    if (!body.ok) return reply;
    return operations.setTtlOverride(key, body.value.ttlSeconds);
  });

  app.delete('/cards/:key/ttl', async (request, reply) => {
    const key = (request.params as { key: string }).key;
    if (!operations.isKnownCard(key)) return unknownCard(reply, key);
    return operations.clearTtlOverride(key);
  });

  app.post('/invalidate', async (request, reply) => {
    const body = parseBody(request, reply, InvalidateRequestSchema);
    if (!body.ok) return reply;
    const { invalidated } = await operations.invalidate(body.value);
    return { invalidated };
  });

  app.post('/warm', async (request, reply) => {
    const body = parseBody(request, reply, WarmRequestSchema);
    if (!body.ok) return reply;
    const unknown = operations.unknownCards(body.value.cardKeys);
    if (unknown.length > 0) return sendError(reply, 400, 'invalid_request', `cardKeys: not configured: ${unknown.join(', ')}`);
    return operations.warm(body.value);
  });

  app.get('/events', async (request, reply) => {
    const query = parseQuery(request, reply, EventQuerySchema);
    if (!query.ok) return reply;
    return { events: await operations.events(query.value) };
  });

  app.get('/customers', async (request, reply) => {
    const query = parseQuery(request, reply, CustomerSearchSchema);
    if (!query.ok) return reply;
    return { customers: await operations.searchCustomers(query.value) };
  });

  app.get('/customers/:customerId/cards', async (request, reply) => {
    const query = parseQuery(request, reply, CustomerCardsQuerySchema);
    if (!query.ok) return reply;
    const customerId = (request.params as { customerId: string }).customerId;
    return operations.customerCards({ workspaceId: query.value.workspaceId, customerId });
  });

  const overview = opts.overview;
  if (overview) app.get('/overview', async () => overview());
}

/** Validates the query string; on failure the 400 has been sent. */
function parseQuery<S extends z.ZodType>(request: FastifyRequest, reply: FastifyReply, schema: S): Parsed<z.output<S>> {
  const parsed = schema.safeParse(request.query ?? {});
  if (parsed.success) return { ok: true, value: parsed.data };
  sendError(reply, 400, 'invalid_request', describeZodIssues(parsed.error).join('; '));
  return { ok: false };
}

function unknownCard(reply: FastifyReply, key: string): FastifyReply {
  return sendError(reply, 404, 'unknown_card', `no card "${key}" is configured`);
}

/** Parses and validates a JSON body; on failure the 400 has been sent. */
function parseBody<S extends z.ZodType>(request: FastifyRequest, reply: FastifyReply, schema: S): Parsed<z.output<S>> {
  const raw = typeof request.body === 'string' ? request.body : '';
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    sendError(reply, 400, 'invalid_json', 'request body is not valid JSON');
    return { ok: false };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    sendError(reply, 400, 'invalid_body', 'request body must be a JSON object');
    return { ok: false };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    sendError(reply, 400, 'invalid_request', describeZodIssues(parsed.error).join('; '));
    return { ok: false };
  }
  return { ok: true, value: parsed.data };
}
