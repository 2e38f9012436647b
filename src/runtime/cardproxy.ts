/**
 * Composes a cardproxy process from a validated config: connections, cache store, queues,
 * workers and the HTTP app, for one of the roles `start` (server and worker), `serve` or
 * `worker`. Owns their shutdown, in dependency order.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { systemClock, type Clock } from '../core/clock.js';
import type { Config } from '../config/schema.js';
import { resolveCardPolicies } from '../config/card-policy.js';
import { groupUpstreams } from '../config/upstream-groups.js';
import { configWarnings } from '../config/load.js';
import { keyLayout } from '../redis/keys.js';
import { CardStore } from '../redis/card-store.js';
import { createBlockingConnection, createCommandConnection, createJobConnection, waitUntilReady } from '../redis/connections.js';
import { Metrics } from '../observability/metrics.js';
import { createLogger } from '../observability/logger.js';
import { RefreshScheduler } from '../refresh/refresh-scheduler.js';
import { RefreshNotifier } from '../refresh/refresh-notifier.js';
import { RefreshWorkers } from '../refresh/refresh-workers.js';
import { DirectRefresher } from '../refresh/direct-refresher.js';
import { CardResolver } from '../service/card-resolver.js';
import { AdminOperations } from '../admin/admin-operations.js';
import { buildApp, buildOpsApp } from '../http/app.js';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { httpsServerOptions, readTlsFiles } from '../http/tls.js';

export type Role = 'start' | 'serve' | 'worker';

export interface CardproxyOptions {
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Listen on `config.listen` (default true); tests may use `app.inject` instead. */
  readonly listen?: boolean;
}

export interface Cardproxy {
  readonly app: FastifyInstance;
  readonly store: CardStore;
  readonly metrics: Metrics;
  readonly redis: Redis;
  /** `http://host:port` (`https://` with `listen.tls`) once listening, else null. */
  readonly url: string | null;
  /** The ops port's `http://host:port` when `listen.opsPort` is set and listening, else null. */
  readonly opsUrl: string | null;
  /**
   * SIGHUP: reads the certificate, key and CA files again. New connections get them; connections
   * in flight keep theirs. A file that cannot be read (or does not fit) keeps the old ones.
   * @returns whether the new files are in use
   */
  reload(): Promise<boolean>;
  /** Graceful: stops accepting, answers in-flight requests, lets active jobs finish, disconnects. */
  close(): Promise<void>;
}

/** How long start-up waits for Redis before serving in degraded mode. */
const STARTUP_REDIS_WAIT_MS = 3000;

export async function startCardproxy(config: Config, role: Role, opts: CardproxyOptions = {}): Promise<Cardproxy> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? createLogger();
  const serves = role !== 'worker';
  const works = role !== 'serve';
  for (const warning of configWarnings(config)) log.warn({ role }, warning);

  const metrics = new Metrics({ budgetMs: config.budgetMs });
  const keys = keyLayout(config.redis.keyPrefix);
  const policies = resolveCardPolicies(config);
  const groups = groupUpstreams(config);
  // A hung Redis must not eat the budget: give up on a command well before it runs out, but not
  // so early that a busy event loop passes for a dead Redis.
  const commandTimeoutMs = Math.min(1000, Math.max(100, Math.floor(config.budgetMs / 4)));
  const redisLog = log.child({ component: 'redis' });
  const redis = createCommandConnection(config.redis.url, redisLog, commandTimeoutMs);
  const storeFor = (connection: Redis) =>
    new CardStore({
      redis: connection,
      keys,
      clock,
      retentionSeconds: config.events.retentionSeconds,
      retentionFor: (cardKey) => policies.get(cardKey) ?? config.defaults,
      onAppended: (type) => metrics.eventsAppended.inc({ type }),
    });
  const store = storeFor(redis);
  const scheduler = new RefreshScheduler({ redis, keys, groups: groups.groups, metrics });
  metrics.setQueueDepthSource(() => scheduler.depth());
  const redisReady = await waitUntilReady(redis, STARTUP_REDIS_WAIT_MS);
  if (!redisReady) log.warn({ url: redactUrl(config.redis.url) }, 'Redis does not answer: serving in degraded mode until it does');

  let workers: RefreshWorkers | undefined;
  let jobRedis: Redis | undefined;
  if (works) {
    const applyConcurrency = () =>
      scheduler.applyGlobalConcurrency().catch((err: unknown) => log.warn({ err, component: 'refresh-scheduler' }, 'could not set global concurrency'));
    if (redisReady) await applyConcurrency();
    else redis.once('ready', () => void applyConcurrency());
    jobRedis = createJobConnection(config.redis.url, redisLog);
    workers = new RefreshWorkers({
      redisUrl: config.redis.url,
      keys,
      groups: groups.groups,
      tuning: config.worker,
      deps: { store: storeFor(jobRedis), policies, clock, metrics, log },
      log: log.child({ component: 'refresh-worker' }),
    });
    workers.start();
  }

  let subscriber: Redis | undefined;
  let cards: { resolver: CardResolver; signingSecrets: readonly string[] } | undefined;
  if (serves) {
    subscriber = createBlockingConnection(config.redis.url, log.child({ component: 'redis' }), 'subscriber');
    const notifier = new RefreshNotifier(subscriber, keys.refreshChannel, log.child({ component: 'refresh-notifier' }));
    void notifier.start().catch((err: unknown) => log.warn({ err }, 'could not subscribe to refresh outcomes'));
    const direct = new DirectRefresher({ metrics, log });
    const resolver = new CardResolver({ store, scheduler, notifier, direct, policies, groups, clock, metrics, log: log.child({ component: 'cards' }), budgetMs: config.budgetMs });
    cards = { resolver, signingSecrets: config.plain.signingSecrets };
  }

  let admin: { token: string; operations: AdminOperations } | undefined;
  if (serves && config.admin.token !== null) {
    const operations = new AdminOperations({ redis, store, scheduler, policies, groups, clock, log: log.child({ component: 'admin' }) });
    admin = { token: config.admin.token, operations };
  } else if (serves) {
    log.info({ role }, 'admin API disabled: no admin.token configured');
  }
  const tlsConfig = config.listen.tls;
  // Unreadable files at start stop the process (the CLI reports them); on SIGHUP they keep the old ones.
  const tls = tlsConfig ? { options: httpsServerOptions(tlsConfig, readTlsFiles(tlsConfig)), clientCertificate: tlsConfig.clientCertificate } : undefined;
  const app = buildApp({ log, clock, metrics, redis, ...(cards ? { cards } : {}), ...(admin ? { admin } : {}), ...(tls ? { tls } : {}) });
  await app.ready();
  const opsApp = config.listen.opsPort !== null ? buildOpsApp({ log, metrics, redis }) : undefined;
  await opsApp?.ready();

  let url: string | null = null;
  let opsUrl: string | null = null;
  if (opts.listen !== false) {
    await app.listen({ host: config.listen.host, port: config.listen.port });
    url = listeningUrl(app, tls ? 'https' : 'http');
    if (opsApp && config.listen.opsPort !== null) {
      await opsApp.listen({ host: config.listen.host, port: config.listen.opsPort });
      opsUrl = listeningUrl(opsApp, 'http');
    }
    log.info(
      { role, url, opsUrl, clientCertificate: tlsConfig?.clientCertificate ?? null, upstreams: groups.groups.map((g) => g.name), cards: [...policies.keys()] },
      'cardproxy listening',
    );
  }

  const reloadTls = (): boolean => {
    if (!tlsConfig) return true;
    try {
      const files = readTlsFiles(tlsConfig);
      // Validated first: setSecureContext would half-apply files that do not fit together.
      createSecureContext(files);
      (app.server as unknown as TlsServer).setSecureContext(files);
      log.info({ certFile: tlsConfig.certFile, clientCaFiles: tlsConfig.clientCaFiles }, 'TLS certificate, key and CA files reloaded');
      return true;
    } catch (err) {
      log.error({ err }, 'TLS files not reloaded: keeping the ones in use');
      return false;
    }
  };

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      log.info({ role }, 'shutting down');
      await Promise.all([app.close(), opsApp?.close()]);
      await workers?.close();
      jobRedis?.disconnect();
      await scheduler.close();
      subscriber?.disconnect();
      await redis.quit().catch(() => redis.disconnect());
      log.info({ role }, 'stopped');
    })());

  return { app, store, metrics, redis, url, opsUrl, reload: async () => reloadTls(), close };
}

function listeningUrl(app: FastifyInstance, scheme: 'http' | 'https'): string | null {
  const address = app.server.address();
  if (!address || typeof address !== 'object') return null;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//[redacted]@');
}
