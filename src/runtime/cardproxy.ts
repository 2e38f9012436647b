/**
 * Composes a cardproxy process from a validated config: connections, cache store, queues,
 * workers and the HTTP app, for one of the roles `start` (server and worker), `serve` or
 * `worker`. Owns their shutdown, in dependency order.
 */
import type { FastifyInstance, FastifyListenOptions } from 'fastify';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.js';
import type { Config } from '../config/schema.js';
import { ConfigError, configWarnings } from '../config/load.js';
import { LiveConfig, RESTART_ONLY_FIELDS } from '../config/live-config.js';
import { keyLayout } from '../redis/keys.js';
import { CardStore } from '../redis/card-store.js';
import { createCommandConnection, createFeedConnection, createSubscriberConnection, createJobConnection, describeEndpoint, waitUntilReady, type RedisClient } from '../redis/connections.js';
import { Metrics } from '../observability/metrics.js';
import { createLogger, droppedLogLines, type LogSecrets } from '../observability/logger.js';
import { configSecrets } from '../config/secrets.js';
import { RefreshScheduler } from '../refresh/refresh-scheduler.js';
import { RefreshNotifier } from '../refresh/refresh-notifier.js';
import { RefreshWorkers } from '../refresh/refresh-workers.js';
import { createPushReloads, LivePushReloads } from '../plain/push-reloads.js';
import { DirectRefresher } from '../refresh/direct-refresher.js';
import { QueueBound } from '../refresh/queue-bound.js';
import { JobWatch } from '../refresh/job-watch.js';
import { CacheHealth } from '../service/cache-health.js';
import { UpstreamSlots } from '../refresh/upstream-slots.js';
import { redisSettingsWarnings } from '../redis/redis-settings.js';
import { trimEventStreamsPeriodically } from '../redis/stream-trim.js';
import { CardResolver } from '../service/card-resolver.js';
import { NearCache } from '../near-cache/near-cache.js';
import { ChangeFeed } from '../near-cache/change-feed.js';
import { AdminOperations } from '../admin/admin-operations.js';
import { PlainWebhooks } from '../warming/plain-webhooks.js';
import type { WebhookRouteOptions } from '../http/routes/webhooks.js';
import { buildApp, buildOpsApp } from '../http/app.js';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { httpsServerOptions, readTlsFiles } from '../http/tls.js';
import { openAcceptors, reusePortSupported, type Acceptors } from '../http/acceptors.js';

export type Role = 'start' | 'serve' | 'worker';

export type ConfigReload = 'reloaded' | 'refused' | 'unchanged';
export interface ReloadResult {
  readonly config: ConfigReload;
  /** Whether the TLS files in use are the ones just read (true without `listen.tls`). */
  readonly tls: boolean;
}

export interface CardproxyOptions {
  readonly clock?: Clock;
  readonly log?: Logger;
  /** What `log` scrubs from its lines: a reloaded configuration's secrets are added to it. */
  readonly secrets?: LogSecrets;
  /** Listen on `config.listen` (default true); tests may use `app.inject` instead. */
  readonly listen?: boolean;
}

export interface Cardproxy {
  readonly app: FastifyInstance;
  readonly store: CardStore;
  readonly metrics: Metrics;
  readonly redis: RedisClient;
  /** `http://host:port` (`https://` with `listen.tls`) once listening, else null. */
  readonly url: string | null;
  /** The ops port's `http://host:port` when `listen.opsPort` is set and listening, else null. */
  readonly opsUrl: string | null;
  /** The configuration in use (replaced by `reload`). */
  readonly live: LiveConfig;
  /**
   * SIGHUP. With `load`, first reads the configuration again: a valid one is put in use (but for
   * the restart-only fields, which are named in the log), an invalid one is refused and logged
   * with `check-config`'s messages. Then reads the certificate, key and CA files again: new
   * connections get them, connections in flight keep theirs; a file that cannot be read (or does
   * not fit) keeps the old ones.
   */
  reload(load?: () => Config): Promise<ReloadResult>;
  /** Graceful: stops accepting, answers in-flight requests, lets active jobs finish, disconnects. */
  close(): Promise<void>;
}

/**
 * Per upstream, how many Redis-down fall-back calls may wait for a slot of this process; past
 * that, a request gets its placeholder at once rather than queueing work that outlives it.
 */
const DIRECT_MAX_WAITING = 32;

/**
 * The most a near cache may lag behind the event log while it is served from. SPEC 14 allows
 * 100 ms for a change to be seen everywhere; the rest is margin for timers and the event loop.
 */
const NEAR_CACHE_MAX_LAG_MS = 75;

/** How long start-up waits for Redis before serving in degraded mode. */
const STARTUP_REDIS_WAIT_MS = 3000;

export async function startCardproxy(config: Config, role: Role, opts: CardproxyOptions = {}): Promise<Cardproxy> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? createLogger();
  const serves = role !== 'worker';
  const works = role !== 'serve';
  for (const warning of configWarnings(config)) log.warn({ role }, warning);

  const metrics = new Metrics({ budgetMs: config.budgetMs });
  metrics.setLogDrops(() => droppedLogLines(log));
  const keys = keyLayout(config.redis.keyPrefix, config.events.shards);
  // Everything below reads the card policies and upstream groups through the live views, so a
  // configuration reloaded on SIGHUP is in use at once.
  const live = new LiveConfig(config);
  const { policies, groups } = live;
  // A hung Redis must not eat the budget: give up on a command well before it runs out, but not
  // so early that a busy event loop passes for a dead Redis.
  const commandTimeoutMs = Math.min(1000, Math.max(100, Math.floor(config.budgetMs / 4)));
  const redisLog = log.child({ component: 'redis' });
  const redis = createCommandConnection(config.redis, redisLog, commandTimeoutMs);
  // A serving process keeps the cards it reads in memory, current through the event feed.
  const nearCache =
    serves && config.nearCache.maxBytes > 0
      ? new NearCache({ maxBytes: config.nearCache.maxBytes, maxLagMs: NEAR_CACHE_MAX_LAG_MS, onFlush: (reason) => metrics.recordNearCacheFlush(reason) })
      : undefined;
  if (nearCache) metrics.setNearCache(nearCache);
  const storeFor = (connection: RedisClient) =>
    new CardStore({
      redis: connection,
      keys,
      clock,
      retentionSeconds: config.events.retentionSeconds,
      retentionFor: (cardKey) => policies.get(cardKey) ?? live.config.defaults,
      onAppended: (type) => metrics.eventsAppended.inc({ type }),
      nearCache,
    });
  const store = storeFor(redis);
  const bound = new QueueBound({ redis, store, metrics, log: log.child({ component: 'refresh-scheduler' }), maxQueued: config.refresh.maxQueued });
  const scheduler = new RefreshScheduler({ redis, keys, groups: groups.groups, metrics, maxQueuedWarming: config.warming.maxQueued, bound });
  metrics.setQueueDepthSource(() => scheduler.depth());
  // Declared below, by role; read at scrape time (workers may change with a reloaded config).
  metrics.setRedisConnections(() => [
    { role: 'command', client: redis },
    ...(jobRedis ? [{ role: 'jobs', client: jobRedis }] : []),
    ...(subscriber ? [{ role: 'subscriber', client: subscriber }] : []),
    ...(workers?.connections() ?? []),
  ]);
  metrics.initUpstreamSeries(groups.groups.map((g) => g.name));
  const redisReady = await waitUntilReady(redis, STARTUP_REDIS_WAIT_MS);
  if (!redisReady) log.warn({ redis: describeEndpoint(config.redis) }, 'Redis does not answer: serving in degraded mode until it does');
  const checkRedisSettings = () =>
    redisSettingsWarnings(redis).then(
      (warnings) => {
        warnings.forEach(({ fields, msg }) => log.warn({ component: 'redis', ...fields }, msg));
        log.debug({ component: 'redis', warnings: warnings.length }, 'Redis settings checked');
      },
      () => {}, // Redis went away meanwhile: its outage is logged already
    );
  if (redisReady) void checkRedisSettings();
  else redis.once('ready', () => void checkRedisSettings());

  // One set of upstream slots for the workers and the Redis-down fall-back of this process.
  const slots = new UpstreamSlots({ maxWaiting: DIRECT_MAX_WAITING });
  let workers: RefreshWorkers | undefined;
  let jobRedis: RedisClient | undefined;
  let concurrencyTimer: NodeJS.Timeout | undefined;
  let stopTrimming: (() => void) | undefined;
  let pushReloads: LivePushReloads | undefined;
  if (works) {
    // The global concurrency lives in Redis: a Redis restarted without persistence, or wiped, has
    // lost it, and the workers would then run as many calls as they have slots. So it is set again
    // on every (re)connect and every worker.concurrencyCheckIntervalMs (a wipe drops no connection).
    const applyConcurrency = () =>
      scheduler.applyGlobalConcurrency().catch((err: unknown) => {
        if (redis.status === 'ready') log.warn({ err, component: 'refresh-scheduler' }, 'could not set global concurrency');
      });
    if (redisReady) await applyConcurrency();
    redis.on('ready', () => void applyConcurrency());
    concurrencyTimer = setInterval(() => void applyConcurrency(), config.worker.concurrencyCheckIntervalMs);
    concurrencyTimer.unref();
    stopTrimming = trimEventStreamsPeriodically(redis, keys, clock, config.events.retentionSeconds, redisLog);
    jobRedis = createJobConnection(config.redis, redisLog);
    // Reloads are pushed to Plain by the worker that lands a card (src/plain/push-reloads.ts says why).
    const pushDeps = { redis: jobRedis, keys, clock, metrics, log: log.child({ component: 'plain-api' }) };
    const pushes = new LivePushReloads(config.plain.api, (api) => createPushReloads(api, pushDeps));
    live.onChange((snapshot) => pushes.update(snapshot.config.plain.api));
    pushReloads = pushes;
    workers = new RefreshWorkers({
      redis: config.redis,
      keys,
      groups: groups.groups,
      tuning: config.worker,
      deps: { store: storeFor(jobRedis), policies, clock, metrics, log, slots, pushReloads: pushes },
      log: log.child({ component: 'refresh-worker' }),
    });
    workers.start();
  }

  let feed: ChangeFeed | undefined;
  if (nearCache) {
    const feedRedis = createFeedConnection(config.redis, redisLog);
    feed = new ChangeFeed({ redis: feedRedis, keys, near: nearCache, log: log.child({ component: 'near-cache' }) });
    feed.start();
  }

  let subscriber: RedisClient | undefined;
  let jobWatch: JobWatch | undefined;
  let health: CacheHealth | undefined;
  let cards: { resolver: CardResolver; signingSecrets: readonly string[] } | undefined;
  let webhooks: Omit<WebhookRouteOptions, 'clock' | 'metrics'> | undefined;
  if (serves) {
    subscriber = createSubscriberConnection(config.redis, redisLog);
    const notifier = new RefreshNotifier(subscriber, keys.eventStreams.map((_, shard) => keys.refreshChannel(shard)), log.child({ component: 'refresh-notifier' }));
    void notifier.start().catch((err: unknown) => log.warn({ err }, 'could not subscribe to refresh outcomes'));
    const direct = new DirectRefresher({ slots, metrics, clock, log });
    jobWatch = new JobWatch({ redis, keys, store, metrics, log: log.child({ component: 'refresh-scheduler' }) });
    health = new CacheHealth(redis);
    const resolver = new CardResolver({ store, scheduler, notifier, direct, jobWatch, health, policies, groups, clock, metrics, log: log.child({ component: 'cards' }), budgetMs: config.budgetMs });
    metrics.setBudgetReserve(() => resolver.reserveMs(clock.now()));
    cards = {
      resolver,
      get signingSecrets() {
        return live.config.plain.signingSecrets;
      },
    };
    webhooks = {
      webhooks: new PlainWebhooks({ store, scheduler, policies, groups, clock, redis, keys, log: log.child({ component: 'webhooks' }) }),
      settings: () => ({
        signingSecrets: live.config.plain.signingSecrets,
        webhookEvents: live.config.warming.webhookEvents,
        toleranceSeconds: live.config.warming.webhookToleranceSeconds,
      }),
    };
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
  const app = buildApp({ log, clock, metrics, redis, ...(cards ? { cards } : {}), ...(webhooks ? { webhooks } : {}), ...(admin ? { admin } : {}), ...(tls ? { tls } : {}) });
  await app.ready();
  const opsApp = config.listen.opsPort !== null ? buildOpsApp({ log, metrics, redis }) : undefined;
  await opsApp?.ready();

  let url: string | null = null;
  let opsUrl: string | null = null;
  let acceptors: Acceptors | undefined;
  if (opts.listen !== false) {
    // A worker's port answers only probes and scrapes: one socket takes those.
    const wanted = serves && reusePortSupported() ? config.listen.acceptors : 1;
    // Fastify passes `reusePort` on to node:net (its types do not name it).
    const listen: FastifyListenOptions & { reusePort?: boolean } = { host: config.listen.host, port: config.listen.port, ...(wanted > 1 ? { reusePort: true } : {}) };
    await app.listen(listen);
    acceptors = await openAcceptors(app.server, wanted, log);
    url = listeningUrl(app, tls ? 'https' : 'http');
    if (opsApp && config.listen.opsPort !== null) {
      await opsApp.listen({ host: config.listen.host, port: config.listen.opsPort });
      opsUrl = listeningUrl(opsApp, 'http');
    }
    log.info(
      { role, url, opsUrl, acceptors: acceptors.count, clientCertificate: tlsConfig?.clientCertificate ?? null, upstreams: groups.groups.map((g) => g.name), cards: [...policies.keys()] },
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

  live.onChange((snapshot) => {
    scheduler.setMaxQueuedWarming(snapshot.config.warming.maxQueued);
    bound.setMaxQueued(snapshot.config.refresh.maxQueued);
    scheduler.updateGroups(snapshot.groups.groups);
    if (!workers) return;
    workers.updateGroups(snapshot.groups.groups);
    scheduler.applyGlobalConcurrency().catch((err: unknown) => log.warn({ err, component: 'refresh-scheduler' }, 'could not set global concurrency'));
  });

  const reloadConfig = (load: () => Config): ConfigReload => {
    let next: Config;
    try {
      next = load();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      // The same messages as `check-config`, one per bad field.
      log.error({ issues: err.issues }, 'configuration not reloaded: keeping the one in use');
      return 'refused';
    }
    // Before anything logs about it: a new token or header value must never reach a line.
    opts.secrets?.update([...configSecrets(next), ...configSecrets(live.config)]);
    const outcome = live.replace(next);
    for (const warning of configWarnings(live.config)) log.warn({ role }, warning);
    const line = { applied: outcome.applied, needRestart: outcome.needRestart, restartOnly: Object.keys(RESTART_ONLY_FIELDS) };
    if (outcome.needRestart.length > 0) log.warn(line, 'configuration reloaded; changes to restart-only fields wait for a restart');
    else log.info(line, 'configuration reloaded');
    return 'reloaded';
  };

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      log.info({ role }, 'shutting down');
      acceptors?.close();
      await Promise.all([app.close(), opsApp?.close()]);
      clearInterval(concurrencyTimer);
      stopTrimming?.();
      await workers?.close();
      await pushReloads?.close();
      jobRedis?.disconnect();
      jobWatch?.close();
      health?.close();
      await scheduler.close();
      subscriber?.disconnect();
      await feed?.close();
      await redis.quit().catch(() => redis.disconnect());
      log.info({ role }, 'stopped');
    })());

  const reload = async (load?: () => Config): Promise<ReloadResult> => ({
    config: load ? reloadConfig(load) : 'unchanged',
    tls: reloadTls(),
  });
  return { app, store, metrics, redis, url, opsUrl, live, reload, close };
}

function listeningUrl(app: FastifyInstance, scheme: 'http' | 'https'): string | null {
  const address = app.server.address();
  if (!address || typeof address !== 'object') return null;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}
