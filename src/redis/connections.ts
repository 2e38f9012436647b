/**
 * Redis connections, one per kind of work (BullMQ's production guide):
 * - the command connection serves requests and must fail fast when Redis is gone, so no request
 *   waits on a dead Redis: no offline queue, one retry, a command time-out;
 * - blocking connections (BullMQ workers, pub/sub) may wait forever and reconnect by themselves.
 *
 * Each is a single `Redis` or, with `redis.clusterNodes`, a `Cluster` (SPEC 13) with the same
 * semantics; `RedisClient` is either.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrlCredentials } from '../observability/logger.js';
import { errorSummary } from '../observability/repeated-warnings.js';

/** A single Redis or a Redis Cluster: every command cardproxy sends works on both. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: `url`, or a cluster's seed nodes when there are any (`config.redis`). */
export interface RedisEndpoint {
  readonly url: string;
  readonly clusterNodes: readonly string[];
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/**
 * The masters to send a per-node command to (`SCAN`, `INFO`, `CONFIG GET`): every master of a
 * cluster that this client is connected to, or the single Redis itself.
 */
export function masterNodes(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}

/** The endpoint for a log line or message: the URL or the seed nodes, without credentials. */
export function describeEndpoint(endpoint: RedisEndpoint): string {
  return endpoint.clusterNodes.length > 0 ? `cluster ${endpoint.clusterNodes.map(redactUrlCredentials).join(',')}` : redactUrlCredentials(endpoint.url);
}

/** Reconnect quickly at first, then every 2 s, forever: recovery needs no restart. */
const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000);

type ConnectionOptions = Omit<RedisOptions, 'retryStrategy'> & { retryStrategy: (times: number) => number | null };

/**
 * A `Redis` for `url`, or a `Cluster` of the seed nodes with the same options: the cluster
 * reconnects with `retryStrategy` and passes the rest (time-outs, retries) to its node connections.
 * Credentials and TLS of the seed nodes (all the same, the config checks it) apply to every node.
 */
function connect(endpoint: RedisEndpoint, options: ConnectionOptions, cluster: Partial<ClusterOptions> = {}): RedisClient {
  if (endpoint.clusterNodes.length === 0) return new Redis(endpoint.url, options);
  const { retryStrategy: clusterRetryStrategy, enableOfflineQueue, lazyConnect, ...nodeOptions } = options;
  const seeds = endpoint.clusterNodes.map((node) => new URL(node));
  const first = seeds[0]!;
  const redisOptions: ClusterOptions['redisOptions'] = {
    ...nodeOptions,
    ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
    ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
    ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  return new Cluster(
    // `[::1]` in a URL is `::1` to a socket.
    seeds.map((url) => ({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 6379) })),
    {
      redisOptions,
      clusterRetryStrategy,
      ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
      ...(lazyConnect === undefined ? {} : { lazyConnect }),
      // A node's slots may move (resharding, fail-over): learn the new map within seconds.
      slotsRefreshTimeout: 2000,
      slotsRefreshInterval: 2000,
      ...cluster,
    },
  );
}

function attachLogging(client: RedisClient, log: Logger, role: string): RedisClient {
  let lastError = '';
  const onError = (err: Error, node?: string) => {
    // ioredis repeats the same error on every reconnect attempt: log each distinct one once,
    // without its stack (the same every time).
    if (err.message !== lastError) log.warn({ err: errorSummary(err), role, ...(node ? { node } : {}) }, 'redis connection error');
    lastError = err.message;
  };
  client.on('error', (err: Error) => onError(err));
  // A cluster reports a node's connection errors apart from its own (its sharded subscribers' as
  // `nodeError`); each counts as a failure of that master for `isUsable`.
  if (isCluster(client)) {
    for (const event of ['node error', 'nodeError']) {
      client.on(event, (err: Error, node: string) => {
        onError(err, node);
        recordNodeFailure(client, node);
      });
    }
  }
  client.on('ready', () => {
    if (lastError) log.info({ role }, 'redis connection restored');
    lastError = '';
  });
  return client;
}

/** The fail-fast connection for the request path (cache reads, enqueues, admin). */
export function createCommandConnection(endpoint: RedisEndpoint, log: Logger, commandTimeoutMs: number): RedisClient {
  const options: ConnectionOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 2000,
    retryStrategy,
  };
  // A command to a master that is gone is retried on the refreshed slot map a few times, not 16.
  return attachLogging(connect(endpoint, options, { maxRedirections: 4, retryDelayOnFailover: 50, retryDelayOnClusterDown: 50 }), log, 'command');
}

/**
 * The connection refresh jobs record their outcomes on. Unlike the request path it may wait: a
 * command that failed after the upstream answered would make BullMQ retry the job and call the
 * upstream again, so a slow moment (a busy event loop, a Redis fail-over) must not fail it.
 */
export function createJobConnection(endpoint: RedisEndpoint, log: Logger): RedisClient {
  const options: ConnectionOptions = { maxRetriesPerRequest: 20, commandTimeout: 15_000, connectTimeout: 5000, retryStrategy };
  return attachLogging(connect(endpoint, options), log, 'jobs');
}

/** A connection that may block (BullMQ worker, subscriber): waits and reconnects forever. */
export function createBlockingConnection(endpoint: RedisEndpoint, log: Logger, role: string, cluster: Partial<ClusterOptions> = {}): RedisClient {
  const options: ConnectionOptions = { maxRetriesPerRequest: null, connectTimeout: 5000, retryStrategy };
  return attachLogging(connect(endpoint, options, cluster), log, role);
}

/**
 * The refresh-outcome subscriber (SSUBSCRIBE). On a cluster it keeps one subscriber connection
 * per master, each subscribed to the channels of that master's slots, re-subscribed when slots move.
 */
export function createSubscriberConnection(endpoint: RedisEndpoint, log: Logger): RedisClient {
  return createBlockingConnection(endpoint, log, 'subscriber', { shardedSubscribers: true });
}

/**
 * The near cache's event feed. On a cluster it reads one stream per command (no multi-slot
 * XREAD there); commands sent together go out as one pipeline per node.
 */
export function createFeedConnection(endpoint: RedisEndpoint, log: Logger): RedisClient {
  return createBlockingConnection(endpoint, log, 'near-cache-feed', { enableAutoPipelining: true });
}

/** Resolves once the client is ready, or after `timeoutMs` (a server starts without Redis). */
export async function waitUntilReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), timeoutMs);
    const onReady = () => done(true);
    function done(ready: boolean) {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ready);
    }
    client.on('ready', onReady);
  });
}

/**
 * The connection of a one-shot CLI command (`replay`, `ttl`, `invalidate`, `events`): commands
 * wait for the connection, but an unreachable Redis fails the command within seconds.
 */
export function createCliConnection(endpoint: RedisEndpoint): RedisClient {
  const client = connect(endpoint, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => (times > 2 ? null : 200),
  });
  client.on('error', () => {}); // surfaced by the failing command instead
  if (isCluster(client)) client.on('node error', () => {});
  return client;
}

/**
 * True when the client is connected and answers PING within `timeoutMs` (false for a hung Redis).
 * A cluster answers only when every master that serves slots does: with one master gone, a part
 * of the cards (and queues) cannot be read or written.
 */
export async function answersPing(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status !== 'ready') return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('ping timed out')), timeoutMs)));
    return await Promise.race([isCluster(client) ? mastersAnswer(client) : client.ping().then((reply) => reply === 'PONG'), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How long a cluster master that failed counts as lost unless its connection is ready again. ioredis
 * drops a lost master's connection and takes it back (unconnected) on the next slot refresh, every
 * 2 s; a client that needs it fails on it again meanwhile.
 */
const NODE_LOST_MS = 5000;

/** When each master (`host:port`) of a cluster client last failed. */
const nodeFailures = new WeakMap<Cluster, Map<string, number>>();

function recordNodeFailure(cluster: Cluster, node: string): void {
  const failures = nodeFailures.get(cluster) ?? new Map<string, number>();
  nodeFailures.set(cluster, failures.set(node, Date.now()));
}

/**
 * Whether the client is usable, without a round trip: ready and, on a cluster, holding a
 * connection to every master that serves slots, none of which failed lately without being ready
 * again since.
 */
export function isUsable(client: RedisClient): boolean {
  if (client.status !== 'ready') return false;
  if (!isCluster(client)) return true;
  const masters = slotMasters(client);
  if (masters === null) return false;
  const failures = nodeFailures.get(client);
  const now = Date.now();
  return masters.every((node) => node.status === 'ready' || now - (failures?.get(`${node.options.host}:${node.options.port}`) ?? -Infinity) > NODE_LOST_MS);
}

/**
 * The connections to the masters named in a cluster's slot map, or null when one is missing or
 * lost (ioredis drops a master's connection when it goes, and takes it back on a slot refresh).
 */
function slotMasters(cluster: Cluster): Redis[] | null {
  const owners = new Set(cluster.slots.map((nodes) => nodes[0]).filter((key) => key !== undefined));
  const pool = new Map(cluster.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
  const masters = [...owners].map((key) => pool.get(key));
  const lost = (node: Redis | undefined) => node === undefined || ['close', 'end', 'reconnecting'].includes(node.status);
  return owners.size === 0 || masters.some(lost) ? null : (masters as Redis[]);
}

/** Every master named in the client's slot map is connected and answers PING. */
async function mastersAnswer(cluster: Cluster): Promise<boolean> {
  const masters = slotMasters(cluster);
  if (masters === null) {
    // A master that was gone is taken back only on a slot refresh: ask for one now.
    cluster.refreshSlotsCache();
    return false;
  }
  const replies = await Promise.all(masters.map((node) => node.ping()));
  return replies.every((reply) => reply === 'PONG');
}
