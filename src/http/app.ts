/**
 * The HTTP application: routes, error answers, per-request timing. Built from its dependencies
 * so tests drive the real app with `inject` and processes own listening and shutdown.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TLSSocket, TlsOptions } from 'node:tls';
import type { RedisClient } from '../redis/connections.js';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { ClientCertificateMode } from '../config/schema.js';
import type { Metrics } from '../observability/metrics.js';
import type { CardResolver } from '../service/card-resolver.js';
import { errorAnswerOf, handleError, handleNotFound, sendError } from './errors.js';
import { LogRateLimit } from '../observability/log-rate-limit.js';
import { lazyRequestLogger } from '../observability/request-logger.js';
import { adminRoutes, type AdminRouteOptions } from './routes/admin.js';
import { CardsEndpoint, cardsRoutes, MAX_BODY_BYTES } from './routes/cards.js';
import { leanCardsListener, type AnsweredRequest } from './lean-cards.js';
import { RequestIntake } from './request-intake.js';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { consoleRoutes } from './routes/console.js';
import { webhookRoutes, type WebhookRouteOptions } from './routes/webhooks.js';
import { healthRoutes } from './routes/health.js';
import { buildOverview } from '../observability/overview.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** When the request arrived, by the app's clock: `/cards` budgets count from here. */
    receivedAt: number;
    /** High-resolution start (`performance.now()`, ms), for the duration histogram. */
    startedAt: number;
    /** In a process that serves `/cards`: how long the request may have waited before it was read (ms). */
    queuedMs: number;
    /** `clientCertificate: "request"`: why the client's certificate was not accepted. */
    tlsAuthorizationError?: string | null;
  }
}

export interface AppDeps {
  readonly log: Logger;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly redis: RedisClient;
  /** Absent in a worker-only process, which answers no `/cards`. */
  readonly cards?: { readonly resolver: CardResolver; readonly signingSecrets: readonly string[] };
  /** `POST /webhooks/plain`; absent in a worker-only process. */
  readonly webhooks?: Omit<WebhookRouteOptions, 'clock' | 'metrics'>;
  /** The admin API under `/admin`; absent (the whole tree answers 404) when no admin token is configured. */
  readonly admin?: AdminRouteOptions;
  /** TLS on this app's port (`listen.tls`); absent: plain HTTP. */
  readonly tls?: { readonly options: TlsOptions; readonly clientCertificate: ClientCertificateMode };
}

const REJECTED_LINES_PER_SECOND = 20;

/** Fastify's options shared by the public app and the ops app. */
function serverOptions(log: Logger) {
  return {
    loggerInstance: log as FastifyBaseLogger,
    // `/cards` logs one line of its own per request, with each key's outcome.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyRequestLogger,
    // Keep-alive longer than typical load balancer idle time-outs, so they close first.
    keepAliveTimeout: 72_000,
    requestTimeout: 30_000,
    forceCloseConnections: 'idle' as const,
    return503OnClosing: true,
  };
}

export function buildApp(deps: AppDeps): FastifyInstance {
  // `/cards` is served by one endpoint, reached through the Fastify route or the lean path.
  const cardsEndpoint = deps.cards ? new CardsEndpoint(deps.cards, deps.log) : undefined;
  const intake = cardsEndpoint ? new RequestIntake() : undefined;
  // One request id sequence for both paths (Fastify's default format: req-1, req-2, …).
  let lastReqId = 0;
  const nextReqId = () => {
    lastReqId = (lastReqId + 1) & 0x7fffffff;
    return `req-${lastReqId.toString(36)}`;
  };
  let closing = false;
  const options = serverOptions(deps.log);

  // One warn line per rejected request (4xx but 404), so that a botched secret rotation or a
  // client certificate that does not arrive shows in the logs, not only in a status-code metric.
  // No body and no header values; at most REJECTED_LINES_PER_SECOND lines a second.
  const rejectedLines = new LogRateLimit(REJECTED_LINES_PER_SECOND, deps.clock);
  /** After every answer, on either path: the request metrics and the rejected-request line. */
  const answered = (r: AnsweredRequest & { readonly log?: () => FastifyBaseLogger; readonly tlsAuthorizationError?: string | null }) => {
    const status = r.status;
    if (status >= 400 && status < 500 && status !== 404) {
      const dropped = rejectedLines.take();
      if (dropped !== null) {
        const log = r.log?.() ?? deps.log.child({ reqId: r.reqId });
        log.warn(
          {
            status,
            error: r.error?.error ?? null,
            message: r.error?.message ?? null,
            method: r.method,
            route: r.route,
            remoteAddress: r.remoteAddress,
            contentLength: Number(r.contentLength ?? 0) || null,
            ...(r.tlsAuthorizationError !== undefined ? { tlsAuthorizationError: r.tlsAuthorizationError } : {}),
            ...(dropped > 0 ? { droppedBefore: dropped } : {}),
          },
          'request rejected',
        );
      }
    }
    const seconds = (performance.now() - r.startedAt) / 1000;
    deps.metrics.observeHttp(r.method, r.route, status, seconds);
    if (r.route === '/cards') deps.metrics.recordCardsAnswer(deps.clock.now() - r.receivedAt, r.queuedMs);
  };

  // With `listen.tls` the server is an `https.Server`; the routes do not care which.
  const serverFactory = (fastifyListener: RequestListener): Server => {
    const listener = cardsEndpoint && intake
      ? leanCardsListener({
          endpoint: cardsEndpoint,
          fastify: fastifyListener,
          clock: deps.clock,
          intake,
          clientCertificate: deps.tls?.clientCertificate,
          closing: () => closing,
          nextReqId,
          answered,
          failed: (reqId, err) => deps.log.child({ reqId }).error({ err }, 'request failed'),
        })
      : fastifyListener;
    const server = deps.tls ? createHttpsServer(deps.tls.options, listener) : createHttpServer(listener);
    // What Fastify sets on a server it makes itself.
    server.keepAliveTimeout = options.keepAliveTimeout;
    server.requestTimeout = options.requestTimeout;
    server.setTimeout(0);
    return server;
  };
  const app = Fastify({
    ...options,
    bodyLimit: MAX_BODY_BYTES,
    genReqId: nextReqId,
    serverFactory,
  }) as unknown as FastifyInstance;

  app.decorateRequest('receivedAt', 0);
  app.decorateRequest('startedAt', 0);
  app.decorateRequest('queuedMs', 0);
  // Callback hooks: an async hook costs a promise per request.
  app.addHook('onRequest', (request, _reply, done) => {
    request.receivedAt = deps.clock.now();
    request.startedAt = performance.now();
    if (intake) request.queuedMs = intake.queuedMs(request.raw.socket, request.startedAt);
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    done();
    intake?.answered(request.raw.socket);
    answered({
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status: reply.statusCode,
      startedAt: request.startedAt,
      receivedAt: request.receivedAt,
      queuedMs: request.queuedMs,
      reqId: request.id,
      error: errorAnswerOf(reply),
      remoteAddress: request.ip,
      contentLength: request.headers['content-length'],
      log: () => request.log,
      ...(request.tlsAuthorizationError !== undefined ? { tlsAuthorizationError: request.tlsAuthorizationError } : {}),
    });
  });
  // On close, Fastify answers new requests with `Connection: close`, and Node closes the
  // connections that are idle at that moment; but a keep-alive connection whose request was still
  // in flight stays open after its answer, holding `close()` (and the exit on SIGTERM) until the
  // client's idle time-out. So answers sent while closing close their connection.
  app.addHook('preClose', async () => {
    closing = true;
  });
  if (intake) app.addHook('onClose', async () => intake.close());
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });

  if (deps.tls?.clientCertificate === 'request') {
    // `request`: the handshake let a client through without a certificate from a configured CA;
    // every route of this port refuses it, with a reason an operator can act on.
    app.addHook('onRequest', async (request, reply) => {
      const socket = request.raw.socket as TLSSocket;
      if (socket.authorized) return;
      // Logged with every rejected request (below), with this reason.
      request.tlsAuthorizationError = socket.authorizationError?.toString() ?? null;
      return sendError(reply, 403, 'client_certificate_required', 'a client certificate signed by a configured CA is required');
    });
  }

  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);

  void app.register(healthRoutes, { redis: deps.redis, metrics: deps.metrics });
  if (cardsEndpoint) void app.register(cardsRoutes, { endpoint: cardsEndpoint });
  if (deps.webhooks) void app.register(webhookRoutes, { ...deps.webhooks, clock: deps.clock, metrics: deps.metrics });
  if (deps.admin) {
    const overview = () => buildOverview(deps.metrics.registry, deps.clock.now());
    void app.register(adminRoutes, { overview, ...deps.admin, prefix: '/admin' });
    void app.register(consoleRoutes, {});
  }
  return app;
}

/** The ops port (`listen.opsPort`): only /healthz, /readyz and /metrics, over plain HTTP. */
export function buildOpsApp(deps: Pick<AppDeps, 'log' | 'metrics' | 'redis'>): FastifyInstance {
  const app = Fastify(serverOptions(deps.log));
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);
  void app.register(healthRoutes, { redis: deps.redis, metrics: deps.metrics });
  return app;
}
