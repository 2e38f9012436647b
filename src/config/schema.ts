/**
 * The configuration file's schema (SPEC section 4).
 *
 * Every object is strict, so a typo in a field name is an error naming its path rather than a
 * silently ignored setting. Defaults are applied here, so the parsed `Config` is complete.
 */
import { z } from 'zod';
import { CardComponentsSchema } from '../core/components.js';
// Card keys as Plain allows them (`cardKeys` items of the card protocol).
import { CARD_KEY_MAX_LENGTH, CARD_KEY_PATTERN } from '../core/plain-protocol.js';

export const UPSTREAM_NAME_PATTERN = /^[A-Za-z0-9_-]+$/;
export const KEY_PREFIX_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Cross-field and key checks run even when some other field already failed, so that one run names
 * every bad field. Their input may then be partly invalid, hence the defensive code in them.
 */
const ALWAYS = { when: () => true };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * An integer in [min, max]. (Not `.int()`: its issue aborts the whole parse in zod 4, which would
 * keep the cross-field checks below from naming their fields in the same run.)
 */
const int = (min: number, max?: number) => {
  const base = z.number().min(min);
  return (max === undefined ? base : base.max(max)).refine(Number.isInteger, 'expected an integer');
};

const nonEmptyString = z.string().min(1, 'must not be empty');

/** How the TLS listener treats client certificates (Plain presents one on every request). */
export const CLIENT_CERTIFICATE_MODES = ['off', 'request', 'require'] as const;
export type ClientCertificateMode = (typeof CLIENT_CERTIFICATE_MODES)[number];

const TlsSchema = z
  .strictObject({
    certFile: nonEmptyString,
    keyFile: nonEmptyString,
    clientCertificate: z.enum(CLIENT_CERTIFICATE_MODES).default('off'),
    clientCaFiles: z.array(nonEmptyString).default([]),
  })
  .superRefine((tls, ctx) => {
    if (!isRecord(tls)) return;
    const mode = tls.clientCertificate ?? 'off';
    const cas = Array.isArray(tls.clientCaFiles) ? tls.clientCaFiles : [];
    if (mode !== 'off' && cas.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['clientCaFiles'],
        message: `clientCertificate "${String(mode)}" needs at least one CA file (Plain's: config/plain-mtls-ca.pem)`,
      });
    }
  }, ALWAYS);

const ListenSchema = z
  .strictObject({
    host: nonEmptyString.default('0.0.0.0'),
    port: int(0, 65535).default(8080),
    /** TLS on `port`; null: plain HTTP (TLS ends at a load balancer). */
    tls: TlsSchema.nullable().default(null),
    /** A second, plain-HTTP port with only /healthz, /readyz and /metrics, for probes and Prometheus. */
    opsPort: int(0, 65535).nullable().default(null),
    /**
     * Listening sockets on `port` (SO_REUSEPORT), each accepting one new connection per turn of the
     * event loop (src/http/acceptors.ts); 1: one socket.
     */
    acceptors: int(1, 64).default(16),
  })
  .superRefine((listen, ctx) => {
    if (!isRecord(listen)) return;
    if (typeof listen.opsPort === 'number' && listen.opsPort !== 0 && listen.opsPort === listen.port) {
      ctx.addIssue({ code: 'custom', path: ['opsPort'], message: 'must differ from listen.port' });
    }
  }, ALWAYS);

const isRedisUrl = (value: string) => {
  try {
    const url = new URL(value);
    return url.protocol === 'redis:' || url.protocol === 'rediss:';
  } catch {
    return false;
  }
};
const redisUrl = nonEmptyString.refine(isRedisUrl, 'must be a redis:// or rediss:// URL');

/** What every seed node of a cluster must share: one scheme (TLS or not) and one set of credentials. */
const clusterAccess = (value: string) => {
  const url = new URL(value);
  return `${url.protocol}//${url.username}:${url.password}`;
};

const RedisSchema = z.strictObject({
  url: redisUrl.default('redis://127.0.0.1:6379'),
  /**
   * Seed nodes of a Redis Cluster (SPEC 13). Non-empty: cardproxy runs on the cluster and `url`
   * is not used. `REDIS_CLUSTER_NODES` (comma-separated) overrides it.
   */
  clusterNodes: z
    .array(redisUrl)
    .default([])
    .superRefine((nodes, ctx) => {
      const valid = nodes.filter(isRedisUrl);
      if (new Set(valid.map(clusterAccess)).size > 1) {
        ctx.addIssue({ code: 'custom', message: 'all seed nodes must use the same scheme (redis:// or rediss://) and the same user and password' });
      }
    }),
  keyPrefix: z
    .string()
    .regex(KEY_PREFIX_PATTERN, 'must be 1 to 64 characters of A-Z, a-z, 0-9, "_", "." or "-"')
    .default('cardproxy'),
});


const AdminSchema = z.strictObject({
  token: nonEmptyString.nullable().default(null),
});

const ScopeSchema = z.enum(['customer', 'thread']);

/** The fields of `defaults`, each of which a card may override. */
const cardSettingShape = {
  ttlSeconds: int(1),
  staleSeconds: int(0),
  placeholderTtlSeconds: int(1),
  staleServeTtlSeconds: int(1),
  integrationErrorTtlSeconds: int(1),
  scope: ScopeSchema,
  /** Refresh-ahead lead as a fraction of the effective TTL (SPEC 10.3); 0 turns it off. */
  refreshAhead: z.number().min(0).max(0.5),
};

const DefaultsSchema = z.strictObject({
  ttlSeconds: cardSettingShape.ttlSeconds.default(300),
  staleSeconds: cardSettingShape.staleSeconds.default(86_400),
  placeholderTtlSeconds: cardSettingShape.placeholderTtlSeconds.default(15),
  staleServeTtlSeconds: cardSettingShape.staleServeTtlSeconds.default(15),
  integrationErrorTtlSeconds: cardSettingShape.integrationErrorTtlSeconds.default(300),
  scope: cardSettingShape.scope.default('customer'),
  refreshAhead: cardSettingShape.refreshAhead.default(0.2),
});

/** The thread events that warm the thread's customer by default (SPEC 10.1). */
export const DEFAULT_WEBHOOK_EVENTS = [
  'thread.thread_created',
  'thread.email_received',
  'thread.chat_received',
  'thread.slack_message_received',
  'thread.ms_teams_message_received',
  'thread.discord_message_received',
  'thread.thread_assignment_transitioned',
] as const;

const WarmingSchema = z.strictObject({
  /** How far a webhook's delivery timestamp may be from now before it is refused as stale. */
  webhookToleranceSeconds: int(1, 86_400).default(300),
  /** Thread events that warm the thread's customer. */
  webhookEvents: z
    .array(z.string().regex(/^thread\.[a-z_]+$/, 'must be a Plain thread event type such as "thread.thread_created"'))
    .default([...DEFAULT_WEBHOOK_EVENTS]),
  /** Queued warming refreshes per upstream past which more warming is dropped (and counted). */
  maxQueued: int(1, 10_000_000).default(10_000),
});

/** Event-log shards when none are configured: spread over a cluster's masters, one stream otherwise. */
export const DEFAULT_CLUSTER_EVENT_SHARDS = 16;

const RefreshSchema = z.strictObject({
  /**
   * Refresh jobs waiting (queued, not running) per upstream past which the oldest of the lowest
   * priority are dropped, their markers released and their waiting requests told (and counted).
   */
  maxQueued: int(1, 10_000_000).default(10_000),
});

const EventsSchema = z.strictObject({
  retentionSeconds: int(60).default(604_800),
  /**
   * Streams the event log is split into (SPEC 13); a card's events all go to one. Default
   * (filled in below, as it depends on `redis`): 16 with `redis.clusterNodes`, else 1.
   */
  shards: int(1, 1024).optional(),
});

/**
 * The defaults bring a crashed worker's refresh back within 15 s (measured: about 10 s): BullMQ
 * renews an active job's lock every `lockDurationMs / 2`, so a dead worker's lock lapses within
 * `lockDurationMs`, and a stalled check (every `stalledIntervalMs`) that finds a job of the
 * previous check without its lock puts it back in the queue, so the job runs again at most
 * `max(lockDurationMs, stalledIntervalMs) + stalledIntervalMs` after the crash. A lock shorter
 * than 10 s would risk a job being taken over while its worker's event loop is merely busy.
 */
const WorkerSchema = z.strictObject({
  /** BullMQ lock duration of an active refresh job. */
  lockDurationMs: int(1000).default(10_000),
  /** How often BullMQ looks for stalled jobs. */
  stalledIntervalMs: int(1000).default(5_000),
  /** How often each upstream's concurrency is written to Redis again (a wiped Redis loses it). */
  concurrencyCheckIntervalMs: int(100).default(5_000),
});

const NearCacheSchema = z.strictObject({
  /** Bytes of card state each serving process keeps in memory (SPEC 14); 0 turns it off. */
  maxBytes: int(0, 2 ** 40).default(64 * 1024 * 1024),
});

const HttpUrlSchema = z
  .string()
  .trim()
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL')
  // fetch refuses credentials in URLs, and they would end up in logs: they belong in a header.
  .refine((value) => {
    try {
      const url = new URL(value);
      return url.username === '' && url.password === '';
    } catch {
      return true;
    }
  }, 'must not contain credentials (user:password@); send them in headers, e.g. "Authorization"');

/**
 * Plain's GraphQL API (SPEC 11), used to push a reload of a card Plain holds a placeholder or
 * error copy of. `apiKey` is a machine user's key; it only ever goes into the Authorization header.
 */
const PlainApiSchema = z.strictObject({
  url: HttpUrlSchema.default('https://core-api.uk.plain.com/graphql/v1'),
  apiKey: nonEmptyString,
  pushReload: z.boolean().default(true),
  /** Calls to Plain's API per process and minute (Plain allows 450 to 1000 per key, by plan). */
  maxRequestsPerMinute: int(1, 100_000).default(300),
});

const PlainSchema = z.strictObject({
  signingSecrets: z.array(nonEmptyString).default([]),
  /** Absent or null: no calls to Plain's API. */
  api: PlainApiSchema.nullable().default(null),
});

/**
 * Header names are trimmed; two names equal after trimming (case-insensitively) are an error, as
 * is a name that is empty after trimming or not a valid HTTP header name. Values are kept as-is
 * (Plain compares them as-is too) but may not contain line breaks.
 */
const HeadersSchema = z
  .record(
    z.string(),
    z.string().refine((value) => !/[\r\n\0]/.test(value), 'a header value may not contain line breaks or NUL'),
  )
  .superRefine((headers, ctx) => {
    if (!isRecord(headers)) return;
    const seen = new Map<string, string>();
    for (const name of Object.keys(headers)) {
      const trimmed = name.trim();
      if (trimmed === '') {
        ctx.addIssue({ code: 'custom', path: [name], message: 'header name is empty' });
        continue;
      }
      if (!HEADER_NAME_PATTERN.test(trimmed)) {
        ctx.addIssue({ code: 'custom', path: [name], message: `"${trimmed}" is not a valid HTTP header name` });
        continue;
      }
      const lower = trimmed.toLowerCase();
      const previous = seen.get(lower);
      if (previous !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `duplicate header name: "${name}" and "${previous}" are the same header once trimmed (names are case-insensitive)`,
        });
      } else {
        seen.set(lower, name);
      }
    }
  }, ALWAYS)
  .transform((headers) => {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) out[name.trim()] = value;
    return out;
  });

const UpstreamSchema = z.strictObject({
  url: HttpUrlSchema,
  headers: HeadersSchema.default({}),
  timeoutMs: int(100, 600_000).default(30_000),
  concurrency: int(1, 1000).default(4),
  retries: int(0, 10).default(1),
  retryDelayMs: int(0, 600_000).default(1000),
  signingSecret: nonEmptyString.nullable().default(null),
});

const CardSchema = z.strictObject({
  upstream: nonEmptyString,
  ttlSeconds: cardSettingShape.ttlSeconds.optional(),
  staleSeconds: cardSettingShape.staleSeconds.optional(),
  placeholderTtlSeconds: cardSettingShape.placeholderTtlSeconds.optional(),
  staleServeTtlSeconds: cardSettingShape.staleServeTtlSeconds.optional(),
  integrationErrorTtlSeconds: cardSettingShape.integrationErrorTtlSeconds.optional(),
  scope: cardSettingShape.scope.optional(),
  refreshAhead: cardSettingShape.refreshAhead.optional(),
  /** Warmed by webhooks and operator warming (SPEC 10); false opts the card out. */
  warm: z.boolean().optional(),
  placeholder: CardComponentsSchema.optional(),
  errorComponents: CardComponentsSchema.optional(),
});

export interface ConfigIssue {
  path: Array<string | number>;
  message: string;
}

/**
 * The checks that span several fields or concern record keys: at least one upstream and one card,
 * valid upstream names and card keys, and every card naming a configured upstream. Works on any
 * input (also one that fails elsewhere), so that one run can name every bad field.
 */
export function crossFieldIssues(config: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (!isRecord(config)) return issues;
  const { upstreams, cards } = config;
  if (isRecord(upstreams)) {
    const names = Object.keys(upstreams);
    if (names.length === 0) issues.push({ path: ['upstreams'], message: 'at least one upstream must be configured' });
    for (const name of names) {
      if (!UPSTREAM_NAME_PATTERN.test(name)) {
        issues.push({ path: ['upstreams', name], message: `invalid upstream name: must match ${UPSTREAM_NAME_PATTERN.source}` });
      }
    }
  }
  if (isRecord(cards)) {
    const keys = Object.keys(cards);
    if (keys.length === 0) issues.push({ path: ['cards'], message: 'at least one card must be configured' });
    for (const key of keys) {
      if (!CARD_KEY_PATTERN.test(key) || key.length > CARD_KEY_MAX_LENGTH) {
        issues.push({
          path: ['cards', key],
          message: `invalid card key: must match ${CARD_KEY_PATTERN.source} and be at most ${CARD_KEY_MAX_LENGTH} characters`,
        });
      }
    }
    if (isRecord(upstreams)) {
      const known = Object.keys(upstreams);
      for (const [key, card] of Object.entries(cards)) {
        if (!isRecord(card) || typeof card.upstream !== 'string' || card.upstream === '') continue;
        if (!Object.hasOwn(upstreams, card.upstream)) {
          issues.push({
            path: ['cards', key, 'upstream'],
            message: `unknown upstream "${card.upstream}"${known.length > 0 ? ` (configured: ${known.join(', ')})` : ''}`,
          });
        }
      }
    }
  }
  return issues;
}

export const ConfigSchema = z
  .strictObject({
    listen: ListenSchema.prefault({}),
    redis: RedisSchema.prefault({}),
    plain: PlainSchema.prefault({}),
    admin: AdminSchema.prefault({}),
    budgetMs: int(100, 14_000).default(10_000),
    defaults: DefaultsSchema.prefault({}),
    events: EventsSchema.prefault({}),
    worker: WorkerSchema.prefault({}),
    warming: WarmingSchema.prefault({}),
    refresh: RefreshSchema.prefault({}),
    nearCache: NearCacheSchema.prefault({}),
    upstreams: z.record(z.string(), UpstreamSchema),
    cards: z.record(z.string(), CardSchema),
  })
  .superRefine((config: unknown, ctx) => {
    for (const issue of crossFieldIssues(config)) ctx.addIssue({ code: 'custom', ...issue });
  }, ALWAYS)
  .transform((config) => {
    const shards = config.events.shards ?? (config.redis.clusterNodes.length > 0 ? DEFAULT_CLUSTER_EVENT_SHARDS : 1);
    return { ...config, events: { ...config.events, shards } };
  });

/** The configuration as written in the file (defaults optional). */
export type ConfigInput = z.input<typeof ConfigSchema>;
/** The validated configuration, every default applied. */
export type Config = z.output<typeof ConfigSchema>;
export type UpstreamConfig = Config['upstreams'][string];
export type CardConfig = Config['cards'][string];
export type CardDefaults = Config['defaults'];
export type CardScope = z.output<typeof ScopeSchema>;
export type PlainApiConfig = NonNullable<Config['plain']['api']>;
export type TlsConfig = NonNullable<Config['listen']['tls']>;
