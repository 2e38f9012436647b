/**
 * The Prometheus metrics of SPEC section 8, in a registry the app owns. Label values come from
 * configuration (card keys, upstream names) or fixed enums, never from request data.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { TalliedHistogram, type HistogramSlot } from './tallied-histogram.js';
import { answersPing, isUsable, type RedisClient } from '../redis/connections.js';
import type { AnswerSource, LookupKind } from '../core/card-resolution.js';
import { REFRESH_TRIGGERS } from '../core/refresh-trigger.js';
import type { FlushReason, NearCache } from '../near-cache/near-cache.js';

export type UpstreamOutcome = 'ok' | 'retriable_error' | 'integration_error';
/** How a push reload to Plain (SPEC 11) turned out. */
export type PlainReloadOutcome = 'ok' | 'error' | 'rate_limited' | 'skipped';
export const PLAIN_RELOAD_OUTCOMES: readonly PlainReloadOutcome[] = ['ok', 'error', 'rate_limited', 'skipped'];
/** Why a queued refresh was dropped (the `reason` of `cardproxy_refresh_dropped_total`). */
export const REFRESH_DROP_REASONS = ['queue_full', 'removed'] as const;
export type RefreshDropReason = (typeof REFRESH_DROP_REASONS)[number];
export type QueueState = 'waiting' | 'active' | 'delayed' | 'failed';
export type QueueDepthSource = () => Promise<Array<{ upstream: string; state: QueueState; count: number }>>;

/** Histogram buckets in seconds with a boundary exactly on the budget, so "within budget" is exact. */
export function latencyBuckets(budgetMs: number): number[] {
  const base = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60];
  return [...new Set([...base, budgetMs / 1000])].sort((a, b) => a - b);
}

export type RedisConnectionsSource = () => ReadonlyArray<{ role: string; client: RedisClient }>;

/** A scrape waits at most this long for the command connection's PING. */
const REDIS_PING_TIMEOUT_MS = 500;

export class Metrics {
  readonly registry = new Registry();

  readonly httpDuration: TalliedHistogram<'method' | 'route' | 'status_code'>;
  readonly cardLookups: Counter<'card_key' | 'result'>;
  readonly cardsServed: Counter<'card_key' | 'source'>;
  readonly upstreamDuration: Histogram<'upstream' | 'outcome'>;
  readonly budgetExhausted: Counter<'card_key'>;
  readonly refreshJobs: Gauge<'upstream' | 'state'>;
  readonly eventsAppended: Counter<'type'>;
  readonly unknownCardKeys: Counter;
  readonly plainReloads: Counter<'outcome'>;
  /** The configured budget, so that dashboards and alerts follow it (see README, "Dashboard and alerts"). */
  readonly budget: Gauge;
  readonly cardsOverBudget: Counter;
  readonly #budgetMs: number;
  readonly refreshesEnqueued: Counter<'upstream' | 'trigger'>;
  readonly warmingDropped: Counter<'upstream'>;
  readonly refreshDropped: Counter<'upstream' | 'reason'>;
  readonly refreshStalled: Counter<'upstream'>;
  readonly webhooks: Counter<'type' | 'outcome'>;
  readonly nearCacheFlushes: Counter<'reason'>;
  readonly redisUp: Gauge<'role'>;
  readonly degradedAnswers: Counter;
  readonly servedMarkersLost: Counter;
  #redisConnections: RedisConnectionsSource | undefined;

  #queueDepth: QueueDepthSource | undefined;
  #nearCache: NearCache | undefined;
  #logLinesDropped: () => number = () => 0;
  /** The sum of how long `/cards` requests may have waited before they were read (ms). */
  #queuedMsTotal = 0;
  /** The budget reserve of a request that would wait now (ms); unset in a process that serves no /cards. */
  #budgetReserveMs: (() => number) | undefined;
  /**
   * The per-card counters of the warm path are plain numbers per label set, added to the
   * prom-client counters at scrape time (see CardTally): prom-client hashes the labels on every
   * increment, even through a child, which cost more than the rest of a card's bookkeeping.
   */
  readonly #cardTally = new CardTally();
  /**
   * The request-duration slot of each route, method and status seen (see TalliedHistogram), by
   * route, method and status: route and method are the same few strings on every request, so the
   * look-ups hash nothing new (a key joined from the three was a string to build and hash).
   */
  readonly #httpSlots = new Map<string, Map<string, Map<number, HistogramSlot>>>();

  constructor(opts: { budgetMs: number }) {
    const registers = [this.registry];
    this.#budgetMs = opts.budgetMs;
    this.budget = new Gauge({
      name: 'cardproxy_budget_seconds',
      help: 'The configured budgetMs of /cards answers, in seconds.',
      registers,
    });
    this.budget.set(opts.budgetMs / 1000);
    this.cardsOverBudget = new Counter({
      name: 'cardproxy_cards_over_budget_total',
      help: '/cards answers sent later than budgetMs after the request arrived.',
      registers,
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'cardproxy_' });
    this.httpDuration = new TalliedHistogram({
      name: 'cardproxy_http_request_duration_seconds',
      help: 'HTTP request duration by route pattern and status code.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: latencyBuckets(opts.budgetMs),
      registers,
    });
    const cardTally = this.#cardTally;
    this.cardLookups = new Counter({
      name: 'cardproxy_card_lookups_total',
      help: 'Card look-ups by what the cache held: fresh, stale, miss, reload (manual reload) or negative (cached integration error).',
      labelNames: ['card_key', 'result'],
      registers,
      collect() {
        cardTally.addTo(this, 'result', LOOKUP_KINDS, 0);
      },
    });
    this.cardsServed = new Counter({
      name: 'cardproxy_cards_served_total',
      help: 'Cards answered to Plain by where they came from.',
      labelNames: ['card_key', 'source'],
      registers,
      collect() {
        cardTally.addTo(this, 'source', ANSWER_SOURCES, LOOKUP_KINDS.length);
      },
    });
    this.upstreamDuration = new Histogram({
      name: 'cardproxy_upstream_request_duration_seconds',
      help: 'Legacy card API call duration by upstream and outcome.',
      labelNames: ['upstream', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120],
      registers,
    });
    this.budgetExhausted = new Counter({
      name: 'cardproxy_budget_exhausted_total',
      help: 'Cards answered with a placeholder because their refresh did not land within budgetMs.',
      labelNames: ['card_key'],
      registers,
    });
    const metrics = this;
    this.refreshJobs = new Gauge({
      name: 'cardproxy_refresh_jobs',
      help: 'Refresh jobs per upstream and state, read from the queues at scrape time.',
      labelNames: ['upstream', 'state'],
      registers,
      async collect() {
        const source = metrics.#queueDepth;
        if (!source) return;
        let timer: NodeJS.Timeout | undefined;
        try {
          // A scrape must not hang on a Redis that is gone: give up after a second.
          const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), 1000)));
          const depths = await Promise.race([source(), timeout]);
          this.reset();
          for (const { upstream, state, count } of depths) this.set({ upstream, state }, count);
        } catch {
          // Redis is down: the gauge is left out rather than failing the whole scrape.
          this.reset();
        } finally {
          clearTimeout(timer);
        }
      },
    });
    this.eventsAppended = new Counter({
      name: 'cardproxy_events_appended_total',
      help: 'Events appended to the event log, by type.',
      labelNames: ['type'],
      registers,
    });
    this.unknownCardKeys = new Counter({
      name: 'cardproxy_unknown_card_keys_total',
      help: 'Requested card keys that are not configured (answered with no card).',
      registers,
    });
    this.plainReloads = new Counter({
      name: 'cardproxy_plain_reloads_total',
      help: "Reloads pushed to Plain's API for cards Plain held a placeholder or error copy of, by outcome (skipped: card key unknown to Plain).",
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of PLAIN_RELOAD_OUTCOMES) this.plainReloads.inc({ outcome }, 0);
    this.refreshesEnqueued = new Counter({
      name: 'cardproxy_refreshes_enqueued_total',
      help: 'Card refreshes put on a queue, by upstream and trigger (request, reload, warm, ahead, invalidate).',
      labelNames: ['upstream', 'trigger'],
      registers,
    });
    this.warmingDropped = new Counter({
      name: 'cardproxy_warming_dropped_total',
      help: 'Card refreshes of warming not queued because the upstream already had warming.maxQueued warming jobs queued.',
      labelNames: ['upstream'],
      registers,
    });
    this.refreshDropped = new Counter({
      name: 'cardproxy_refresh_dropped_total',
      help: 'Card refreshes taken off a queue before they ran: queue_full (past refresh.maxQueued, the oldest of the lowest priority first) or removed (the job vanished from the queue, e.g. removed or obliterated by an operator, found by a request waiting for it).',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    this.refreshStalled = new Counter({
      name: 'cardproxy_refresh_stalled_total',
      help: 'Refresh jobs BullMQ found running without a lock (their process was blocked for longer than worker.lockDurationMs, or stopped) and put back on the queue, by upstream: each runs again, another upstream call.',
      labelNames: ['upstream'],
      registers,
    });
    this.redisUp = new Gauge({
      name: 'cardproxy_redis_up',
      help: "1 while this process's Redis connection of a role (command, jobs, subscriber, worker:<upstream>) is usable, else 0. The command connection is pinged at scrape time, so a hung Redis shows as 0. On a Redis Cluster, usable means with every master that serves slots: the command connection pings each, the others count one lost while it fails them (an idle connection may not notice).",
      labelNames: ['role'],
      registers,
      async collect() {
        const connections = metrics.#redisConnections?.() ?? [];
        const up = await Promise.all(connections.map(({ role, client }) => (role === 'command' ? answersPing(client, REDIS_PING_TIMEOUT_MS) : isUsable(client))));
        this.reset();
        connections.forEach(({ role }, i) => this.set({ role }, up[i] ? 1 : 0));
      },
    });
    this.degradedAnswers = new Counter({
      name: 'cardproxy_degraded_answers_total',
      help: '/cards requests answered in degraded mode: RedisClient was unreachable, upstreams were called directly.',
      registers,
    });
    this.servedMarkersLost = new Counter({
      name: 'cardproxy_served_markers_lost_total',
      help: 'Served markers of answered cards that could not be written to Redis: a manual reload of those cards may be answered from the cache, and a placeholder among them is not pushed to reload.',
      registers,
    });
    this.webhooks = new Counter({
      name: 'cardproxy_webhooks_total',
      help: 'Plain webhook deliveries by event type (other when not acted on) and outcome: accepted, duplicate, ignored, rejected.',
      labelNames: ['type', 'outcome'],
      registers,
    });
    // Present from the start (at 0), so dashboards and alerts see them before the first webhook.
    for (const outcome of ['accepted', 'duplicate', 'ignored', 'rejected']) this.webhooks.inc({ type: 'other', outcome }, 0);
    this.nearCacheFlushes = new Counter({
      name: 'cardproxy_near_cache_flushes_total',
      help: 'Times the near cache was dropped whole: its event feed broke (feed_broken) or a replay rewrote the cache (replay).',
      labelNames: ['reason'],
      registers,
    });
    new Gauge({
      name: 'cardproxy_budget_reserve_seconds',
      help: 'How much of budgetMs a /cards request that waits for a refresh keeps back for answering: 5 % of the budget (25-100 ms) plus how late recent waits ended (halving every 5 s), at most a quarter of it. Above the 5 %, the event loop answers late (overload).',
      registers,
      collect() {
        const reserve = metrics.#budgetReserveMs;
        if (reserve) this.set(reserve() / 1000);
      },
    });
    counterReading(
      registers,
      'cardproxy_cards_queued_seconds_total',
      'How long /cards requests may have waited before this process read them, summed: its event loop was busy without a break since then (or since the previous answer on the connection). Divided by the request rate: the mean. Above a few ms, the process is short of CPU; waits end that much earlier.',
      () => metrics.#queuedMsTotal / 1000,
    );
    counterReading(
      registers,
      'cardproxy_log_lines_dropped_total',
      'Log lines dropped because stdout did not take them fast enough (more than 16 MiB waiting).',
      () => metrics.#logLinesDropped(),
    );
    const near = () => metrics.#nearCache;
    new Gauge({
      name: 'cardproxy_near_cache_bytes',
      help: 'Estimated bytes of card state held in this process near cache (bounded by nearCache.maxBytes).',
      registers,
      collect() {
        this.set(near()?.bytes ?? 0);
      },
    });
    new Gauge({
      name: 'cardproxy_near_cache_entries',
      help: 'Cards held in this process near cache.',
      registers,
      collect() {
        this.set(near()?.size ?? 0);
      },
    });
    new Gauge({
      name: 'cardproxy_near_cache_feed_up',
      help: '1 while the near cache is served from (its event feed is continuous and current), else 0: requests read Redis.',
      registers,
      collect() {
        this.set(near()?.trusted ? 1 : 0);
      },
    });
    new Counter({
      name: 'cardproxy_near_cache_lookups_total',
      help: 'Card look-ups by the near cache: hit, miss (read from Redis), bypass (feed not current: read from Redis).',
      labelNames: ['result'],
      registers,
      collect() {
        const stats = near()?.stats ?? { lookups: 0, hits: 0, bypassed: 0, caughtUp: 0 };
        this.reset();
        this.inc({ result: 'hit' }, stats.hits);
        this.inc({ result: 'miss' }, stats.lookups - stats.hits);
        this.inc({ result: 'bypass' }, stats.bypassed);
      },
    });
    counterReading(
      registers,
      'cardproxy_near_cache_catch_up_waits_total',
      'Requests that found the near cache feed behind the lag bound and waited (at most 50 ms) for its next confirmation instead of reading Redis.',
      () => near()?.stats.caughtUp ?? 0,
    );
  }

  /** Where the dropped-log-lines counter reads its count at scrape time. */
  setLogDrops(source: () => number): void {
    this.#logLinesDropped = source;
  }

  /** Where the budget-reserve gauge reads the current reserve (ms) at scrape time. */
  setBudgetReserve(source: () => number): void {
    this.#budgetReserveMs = source;
  }

  /** The near cache whose size and hit counts the near-cache metrics read at scrape time. */
  setNearCache(near: NearCache): void {
    this.#nearCache = near;
  }

  recordNearCacheFlush(reason: FlushReason): void {
    this.nearCacheFlushes.inc({ reason });
  }

  /** Observes one HTTP request's duration. */
  observeHttp(method: string, route: string, statusCode: number, seconds: number): void {
    let byMethod = this.#httpSlots.get(route);
    if (byMethod === undefined) this.#httpSlots.set(route, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) byMethod.set(method, (byStatus = new Map()));
    let slot = byStatus.get(statusCode);
    if (slot === undefined) byStatus.set(statusCode, (slot = this.httpDuration.slot({ method, route, status_code: String(statusCode) })));
    slot.observe(seconds);
  }

  /** The Redis connections the `cardproxy_redis_up` gauge reports, read at scrape time. */
  setRedisConnections(source: RedisConnectionsSource): void {
    this.#redisConnections = source;
  }

  /** Starts the per-upstream warming series at 0, so they exist before the first refresh. */
  initUpstreamSeries(upstreams: readonly string[]): void {
    for (const upstream of upstreams) {
      for (const trigger of REFRESH_TRIGGERS) this.refreshesEnqueued.inc({ upstream, trigger }, 0);
      this.warmingDropped.inc({ upstream }, 0);
      for (const reason of REFRESH_DROP_REASONS) this.refreshDropped.inc({ upstream, reason }, 0);
      this.refreshStalled.inc({ upstream }, 0);
    }
  }

  /** Where the refresh-job gauge reads its counts at scrape time. */
  setQueueDepthSource(source: QueueDepthSource): void {
    this.#queueDepth = source;
  }

  /** A `/cards` answer was sent `elapsedMs` after its request was read, which may have waited `queuedMs` before. */
  recordCardsAnswer(elapsedMs: number, queuedMs: number): void {
    if (elapsedMs > this.#budgetMs) this.cardsOverBudget.inc();
    this.#queuedMsTotal += queuedMs;
  }

  /** One card of a `/cards` answer: how it was looked up, and where its answer came from. */
  recordCard(cardKey: string, result: LookupKind, source: AnswerSource): void {
    this.#cardTally.add(cardKey, result, source);
  }
}

/** A counter without labels whose value is kept elsewhere as a plain number and read at scrape time. */
function counterReading(registers: Registry[], name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/**
 * The `result` values of cardproxy_card_lookups_total and the `source` values of
 * cardproxy_cards_served_total, each with its slot in a card's tally (a record, so that the
 * compiler insists on every value).
 */
const LOOKUP_SLOT: Readonly<Record<LookupKind, number>> = { fresh: 0, stale: 1, negative: 2, miss: 3, reload: 4 };
const SOURCE_SLOT: Readonly<Record<AnswerSource, number>> = { cache: 5, stale: 6, refreshed: 7, placeholder: 8, error: 9 };
const LOOKUP_KINDS = Object.keys(LOOKUP_SLOT) as LookupKind[];
const ANSWER_SOURCES = Object.keys(SOURCE_SLOT) as AnswerSource[];
const TALLY_SLOTS = LOOKUP_KINDS.length + ANSWER_SOURCES.length;

/**
 * Counts per card key of each look-up result and answer source, in plain numbers (one slot per
 * value, one map look-up per answered card), moved into the prom-client counters when they are
 * collected (a scrape, or `get()`). Card keys are configured names and the values fixed enums, so
 * the number of slots is bounded like the counters' series.
 */
class CardTally {
  /** card key → counts not yet added to the counters: LOOKUP_KINDS, then ANSWER_SOURCES. */
  readonly #counts = new Map<string, Float64Array>();

  add(cardKey: string, result: LookupKind, source: AnswerSource): void {
    let counts = this.#counts.get(cardKey);
    if (counts === undefined) this.#counts.set(cardKey, (counts = new Float64Array(TALLY_SLOTS)));
    counts[LOOKUP_SLOT[result]]! += 1;
    counts[SOURCE_SLOT[source]]! += 1;
  }

  /** Adds the counts of `values` (slots from `first` on) to `counter` and starts them again from 0. */
  addTo<L extends string>(counter: Counter<'card_key' | L>, label: L, values: readonly string[], first: number): void {
    for (const [cardKey, counts] of this.#counts) {
      for (let i = 0; i < values.length; i++) {
        const n = counts[first + i]!;
        if (n === 0) continue;
        counter.inc({ card_key: cardKey, [label]: values[i]! } as Record<'card_key' | L, string>, n);
        counts[first + i] = 0;
      }
    }
  }
}
