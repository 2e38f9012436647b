/**
 * The operator's CLI commands (`ttl`, `invalidate`, `events`, `replay`): the admin API's
 * operations for people who live in a shell. They talk to Redis directly with the config's
 * `redis` settings, so they work while no server runs, and print a readable table or, with
 * `--json`, JSON. Exit codes: 0 done, 1 runtime failure (Redis unreachable), 2 bad input.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { resolveCardPolicies } from '../config/card-policy.js';
import { groupUpstreams } from '../config/upstream-groups.js';
import { configWarnings } from '../config/load.js';
import { systemClock } from '../core/clock.js';
import { describeZodIssues } from '../core/describe-zod-issues.js';
import { AdminOperations } from '../admin/admin-operations.js';
import { EventQuerySchema, InvalidateRequestSchema, MAX_WARM_CUSTOMERS, TtlOverrideRequestSchema, WarmRequestSchema } from '../admin/admin-requests.js';
import type { CardListing } from '../admin/card-listing.js';
import { CardStore } from '../redis/card-store.js';
import { createCliConnection, describeEndpoint, type RedisClient } from '../redis/connections.js';
import type { LoggedEvent } from '../redis/event-log.js';
import { keyLayout } from '../redis/keys.js';
import { replayEventLog, type ReplaySummary } from '../redis/replay.js';
import type { RefreshScheduler } from '../refresh/refresh-scheduler.js';
import { formatTable, type Column } from './table.js';

/** Bad input: the command exits 2 with this message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The parsed options every admin command may receive. */
export interface AdminCommandOptions {
  readonly json?: boolean | undefined;
  readonly 'customer-id'?: string | undefined;
  readonly email?: string | undefined;
  readonly 'external-id'?: string | undefined;
  readonly 'workspace-id'?: string | undefined;
  readonly 'card-key'?: string[] | undefined;
  readonly refresh?: boolean | undefined;
  readonly reason?: string | undefined;
  readonly type?: string | undefined;
  readonly limit?: string | undefined;
  readonly file?: string | undefined;
  readonly 'thread-id'?: string | undefined;
}

/** Where a command logs and prints. */
export interface CommandEnv {
  readonly log: Logger;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

interface Context {
  readonly redis: RedisClient;
  readonly store: CardStore;
  readonly operations: AdminOperations;
  readonly scheduler: RefreshScheduler | undefined;
}

/** `ttl list`, `ttl set KEY SECONDS`, `ttl clear KEY`. */
export async function runTtl(config: Config, args: readonly string[], opts: AdminCommandOptions, env: CommandEnv): Promise<number> {
  const [action, key, seconds, ...extra] = args;
  const policies = resolveCardPolicies(config);
  const known = (cardKey: string | undefined): string => {
    if (cardKey === undefined) throw new UsageError(`ttl ${action} needs a card KEY`);
    if (!policies.has(cardKey)) throw new UsageError(`unknown card key "${cardKey}" (configured: ${[...policies.keys()].join(', ')})`);
    return cardKey;
  };
  switch (action) {
    case 'list': {
      if (key !== undefined) throw new UsageError('ttl list takes no arguments');
      return withContext(config, env, { scheduler: false }, async ({ operations }) => {
        const cards = await operations.listCards();
        env.out(opts.json ? json({ cards }) : formatTable(cards, CARD_COLUMNS));
      });
    }
    case 'set': {
      const cardKey = known(key);
      if (seconds === undefined || extra.length > 0) throw new UsageError('usage: ttl set KEY SECONDS');
      const parsed = TtlOverrideRequestSchema.safeParse({ ttlSeconds: /^\d+$/.test(seconds) ? Number(seconds) : seconds });
      if (!parsed.success) throw new UsageError(`SECONDS ${describeZodIssues(parsed.error).map((m) => m.replace(/^ttlSeconds: /, '')).join('; ')}`);
      return withContext(config, env, { scheduler: false }, async ({ operations }) => {
        const entry = (await operations.setTtlOverride(cardKey, parsed.data.ttlSeconds))!;
        env.out(opts.json ? json(entry) : formatTable([entry], CARD_COLUMNS));
      });
    }
    case 'clear': {
      const cardKey = known(key);
      if (seconds !== undefined) throw new UsageError('usage: ttl clear KEY');
      return withContext(config, env, { scheduler: false }, async ({ operations }) => {
        const entry = (await operations.clearTtlOverride(cardKey))!;
        env.out(opts.json ? json(entry) : formatTable([entry], CARD_COLUMNS));
      });
    }
    default:
      throw new UsageError(action === undefined ? 'ttl needs an action: list, set KEY SECONDS or clear KEY' : `unknown ttl action "${action}"`);
  }
}

/** `invalidate --customer-id|--email|--external-id X [--workspace-id W] [--card-key K]... [--refresh]`. */
export async function runInvalidate(config: Config, args: readonly string[], opts: AdminCommandOptions, env: CommandEnv): Promise<number> {
  if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
  const parsed = InvalidateRequestSchema.safeParse({
    customerId: opts['customer-id'],
    email: opts.email,
    externalId: opts['external-id'],
    workspaceId: opts['workspace-id'],
    cardKeys: opts['card-key'],
    refresh: opts.refresh ?? false,
    reason: opts.reason,
  });
  if (!parsed.success) throw new UsageError(cliMessage(describeZodIssues(parsed.error)));
  const request = parsed.data;
  // A typo would silently invalidate nothing: refuse keys that are not configured, as `ttl` does.
  const policies = resolveCardPolicies(config);
  const unknown = (request.cardKeys ?? []).filter((key) => !policies.has(key));
  if (unknown.length > 0) {
    throw new UsageError(`unknown card key${unknown.length === 1 ? '' : 's'} ${unknown.map((k) => `"${k}"`).join(', ')} (configured: ${[...policies.keys()].join(', ')})`);
  }
  return withContext(config, env, { scheduler: request.refresh }, async ({ operations }) => {
    const result = await operations.invalidate(request);
    if (opts.json) env.out(json(result));
    else {
      const refreshing = request.refresh ? `, ${result.refreshing} refresh${result.refreshing === 1 ? '' : 'es'} queued` : '';
      env.out(`invalidated ${result.invalidated} cached card${result.invalidated === 1 ? '' : 's'}${refreshing}\n`);
    }
  });
}

/** `events [--customer-id X] [--card-key K] [--type T] [--limit N]`. */
export async function runEvents(config: Config, args: readonly string[], opts: AdminCommandOptions, env: CommandEnv): Promise<number> {
  if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
  const parsed = EventQuerySchema.safeParse({ customerId: opts['customer-id'], cardKey: opts['card-key']?.at(-1), type: opts.type, limit: opts.limit });
  if (!parsed.success) throw new UsageError(cliMessage(describeZodIssues(parsed.error)));
  return withContext(config, env, { scheduler: false }, async ({ operations }) => {
    const events = await operations.events(parsed.data);
    env.out(opts.json ? json({ events }) : formatTable(events, EVENT_COLUMNS));
  });
}

/**
 * `warm --workspace-id W (--customer-id X [--email E] [--external-id Y] | --file F) [--thread-id T]
 * [--card-key K]...`: warms customers' cards (SPEC 10.2). `F` holds one JSON object
 * `{id, email?, externalId?}` per line; it is read twice, streamed (validated first, so a bad line
 * warms nothing), and sent in batches of MAX_WARM_CUSTOMERS, each warmed 16 customers at a time,
 * with a progress line on stderr.
 */
export async function runWarm(config: Config, args: readonly string[], opts: AdminCommandOptions, env: CommandEnv): Promise<number> {
  if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
  const single = opts['customer-id'] !== undefined;
  if (single === (opts.file !== undefined)) throw new UsageError('warm needs exactly one of --customer-id or --file');
  if (!single && (opts.email !== undefined || opts['external-id'] !== undefined)) throw new UsageError('--email and --external-id go with --customer-id');
  const request = (customers: unknown[]) => {
    const parsed = WarmRequestSchema.safeParse({
      workspaceId: opts['workspace-id'],
      customers,
      threadId: opts['thread-id'],
      cardKeys: opts['card-key'],
    });
    if (!parsed.success) throw new UsageError(cliMessage(describeZodIssues(parsed.error)));
    const unknown = (parsed.data.cardKeys ?? []).filter((key) => !Object.hasOwn(config.cards, key));
    if (unknown.length > 0) throw new UsageError(`--card-key: not configured: ${unknown.join(', ')}`);
    return parsed.data;
  };
  if (single) {
    const warm = request([{ id: opts['customer-id'], email: opts.email, externalId: opts['external-id'] }]);
    return withContext(config, env, { scheduler: true }, async ({ operations }) => {
      const { queued } = await operations.warm(warm);
      env.out(opts.json ? json({ customers: 1, queued }) : `warmed 1 customer: ${queued} card refresh${queued === 1 ? '' : 'es'} queued\n`);
    });
  }
  const file = opts.file!;
  let total = 0;
  try {
    for await (const batch of customerBatches(file)) {
      request(batch.customers); // every line valid before anything is warmed
      total += batch.customers.length;
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return withContext(config, env, { scheduler: true }, async ({ operations }) => {
    let done = 0;
    let queued = 0;
    for await (const batch of customerBatches(file)) {
      queued += (await operations.warm(request(batch.customers))).queued;
      done += batch.customers.length;
      env.err(`warm: ${done}/${total} customers, ${queued} card refreshes queued\n`);
    }
    env.out(opts.json ? json({ customers: done, queued }) : `warmed ${done} customer${done === 1 ? '' : 's'}: ${queued} card refresh${queued === 1 ? '' : 'es'} queued\n`);
  });
}

/** A JSON-lines file of customers in batches of MAX_WARM_CUSTOMERS; blank lines are skipped. */
async function* customerBatches(file: string): AsyncGenerator<{ customers: unknown[] }> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let customers: unknown[] = [];
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    if (line.trim() === '') continue;
    try {
      customers.push(JSON.parse(line));
    } catch {
      throw new UsageError(`${file} line ${lineNumber}: not a JSON object`);
    }
    if (customers.length === MAX_WARM_CUSTOMERS) {
      yield { customers };
      customers = [];
    }
  }
  if (customers.length > 0) yield { customers };
}

/** `replay`: rebuilds the card cache, the customer index and the TTL overrides from the log. */
export async function runReplay(config: Config, args: readonly string[], opts: AdminCommandOptions, env: CommandEnv): Promise<number> {
  if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
  for (const warning of configWarnings(config)) if (warning.startsWith('events.retentionSeconds')) env.err(`warning: ${warning}\n`);
  return withContext(config, env, { scheduler: false }, async ({ redis, store }) => {
    const summary = await replayEventLog({ redis, store, keys: store.keys, log: env.log });
    env.out(opts.json ? json(summary) : replayText(summary));
  });
}

async function withContext(
  config: Config,
  env: CommandEnv,
  opts: { scheduler: boolean },
  run: (context: Context) => Promise<void>,
): Promise<number> {
  const redis = createCliConnection(config.redis);
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => (lastError = err));
  let scheduler: RefreshScheduler | undefined;
  try {
    try {
      await redis.connect();
    } catch (err) {
      env.err(`cardproxy: cannot reach Redis at ${describeEndpoint(config.redis)}: ${(lastError ?? (err as Error)).message}\n`);
      return 1;
    }
    const keys = keyLayout(config.redis.keyPrefix, config.events.shards);
    const policies = resolveCardPolicies(config);
    const groups = groupUpstreams(config);
    const store = new CardStore({
      redis,
      keys,
      clock: systemClock,
      retentionSeconds: config.events.retentionSeconds,
      retentionFor: (cardKey) => policies.get(cardKey) ?? config.defaults,
    });
    if (opts.scheduler) {
      const { RefreshScheduler } = await import('../refresh/refresh-scheduler.js'); // BullMQ: only when needed
      scheduler = new RefreshScheduler({ redis, keys, groups: groups.groups, maxQueuedWarming: config.warming.maxQueued });
    }
    const operations = new AdminOperations({ redis, store, policies, groups, clock: systemClock, scheduler, log: env.log });
    await run({ redis, store, operations, scheduler });
    return 0;
  } catch (err) {
    env.err(`cardproxy: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await scheduler?.close().catch(() => {});
    await redis.quit().catch(() => redis.disconnect());
  }
}

function cliMessage(issues: readonly string[]): string {
  // Name the command-line flags rather than the API's body fields.
  const flags: Record<string, string> = {
    customerId: '--customer-id',
    email: '--email',
    externalId: '--external-id',
    workspaceId: '--workspace-id',
    cardKeys: '--card-key',
    cardKey: '--card-key',
    threadId: '--thread-id',
    customers: 'customer',
    reason: '--reason',
    type: '--type',
    limit: '--limit',
  };
  return issues
    .map((issue) => issue.replace(/\b(customerId|email|externalId|workspaceId|cardKeys|cardKey|threadId|customers|reason|type|limit)\b(\[\d+\])?/g, (_, name: string) => flags[name] ?? name))
    .join('; ');
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

const CARD_COLUMNS: Column<CardListing>[] = [
  { heading: 'KEY', cell: (c) => c.key },
  { heading: 'UPSTREAM', cell: (c) => c.upstream },
  { heading: 'SCOPE', cell: (c) => c.scope },
  { heading: 'TTL', cell: (c) => c.ttlSeconds },
  { heading: 'STALE', cell: (c) => c.staleSeconds },
  { heading: 'OVERRIDE', cell: (c) => c.overrideTtlSeconds },
];

const dataOf = (e: LoggedEvent): Record<string, unknown> =>
  typeof e.data === 'object' && e.data !== null ? (e.data as Record<string, unknown>) : {};

function eventDetail(e: LoggedEvent): string {
  const d = dataOf(e);
  switch (e.type) {
    case 'card.refreshed':
      return `ttl ${String(d.ttlSeconds)}s from ${String(d.upstream)} in ${String(d.durationMs)} ms`;
    case 'card.refresh_failed':
      return `${String(d.errorKind)}${d.status === null || d.status === undefined ? '' : ` (${String(d.status)})`}: ${String(d.detail)}`;
    case 'card.invalidated':
      return String(d.reason);
    case 'ttl.override_set':
      return `ttl ${String(d.ttlSeconds)}s`;
    default:
      return '';
  }
}

const EVENT_COLUMNS: Column<LoggedEvent>[] = [
  { heading: 'ID', cell: (e) => e.id },
  { heading: 'AT', cell: (e) => e.at },
  { heading: 'TYPE', cell: (e) => e.type },
  { heading: 'WORKSPACE', cell: (e) => dataOf(e).workspaceId as string | undefined },
  { heading: 'CUSTOMER', cell: (e) => dataOf(e).customerId as string | undefined },
  { heading: 'THREAD', cell: (e) => dataOf(e).threadId as string | undefined },
  { heading: 'CARD', cell: (e) => dataOf(e).cardKey as string | undefined },
  { heading: 'DETAIL', cell: eventDetail },
];

function replayText(s: ReplaySummary): string {
  const rows: Array<[string, string | number]> = [
    ['events read', s.eventsRead],
    ['card events', s.cardEvents],
    ['override events', s.overrideEvents],
    ['skipped (invalid)', s.skipped],
    ['cards written', s.cardsWritten],
    ['cards expired', `${s.cardsExpired} (past their keep-until: not written)`],
    ['ttl overrides', s.overrides],
    ['derived keys deleted', s.keysDeleted],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return [`replay finished in ${s.durationMs} ms`, ...rows.map(([label, value]) => `  ${`${label}:`.padEnd(width + 2)}${value}`), ''].join('\n');
}
