/**
 * Push reload (SPEC 11): once a card has landed in the cache, every context in which Plain holds
 * its placeholder or error components (and has not let that copy expire) gets a
 * `reloadCustomerCardInstance`, so the agent sees the real card without pressing reload.
 *
 * Which process sends it: the worker whose job landed the card. It is the one process that knows,
 * exactly once per landing, the moment the card is in the cache (its events are applied before
 * `cardsLanded` is called), so the mutation can never overtake the card, and Plain's follow-up
 * request always finds it. A server that hears the refresh outcome would hear it in every server
 * process (each would have to race for the push), would miss it when the notice is lost on a
 * reconnect, and would do Plain API calls in the processes that answer `/cards`. The claim on the
 * served markers (src/redis/served-markers.ts) keeps it exactly-once even when two jobs land the
 * same card.
 *
 * Nothing here delays the job or a `/cards` answer: pushes run in the background, failures are
 * logged and counted (`cardproxy_plain_reloads_total{outcome}`), never thrown.
 */
import type { RedisClient } from '../redis/connections.js';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { CardRef } from '../core/card-ref.js';
import type { PlainApiConfig } from '../config/schema.js';
import type { Metrics, PlainReloadOutcome } from '../observability/metrics.js';
import type { KeyLayout } from '../redis/keys.js';
import { ServedMarkers, type ClaimedContext } from '../redis/served-markers.js';
import { CardConfigIds } from './card-config-ids.js';
import { PlainApiClient } from './plain-api-client.js';

export interface PushReloadDeps {
  readonly markers: Pick<ServedMarkers, 'claimAwaitingReload'>;
  readonly ids: Pick<CardConfigIds, 'idOf'>;
  readonly client: Pick<PlainApiClient, 'reloadCustomerCardInstance' | 'close'>;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly log: Logger;
}

/**
 * A request that gets the placeholder records its marker a moment after it read the cache for the
 * last time; a card landing in that moment finds no marker yet. A second look this much later
 * finds it (what the first look claimed is gone by then, so nothing is pushed twice).
 */
export const SECOND_LOOK_MS = 1000;

export class PushReloads {
  readonly #d: PushReloadDeps;
  /** Pushes under way, so that a graceful close can let them finish. */
  readonly #running = new Set<Promise<void>>();
  readonly #secondLooks = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(deps: PushReloadDeps) {
    this.#d = deps;
  }

  /**
   * Cards that landed with data and are in the cache now. Returns at once; the pushes run in the
   * background.
   */
  cardsLanded(refs: readonly CardRef[]): void {
    if (refs.length === 0 || this.#closed) return;
    this.#run(refs);
    const timer = setTimeout(() => {
      this.#secondLooks.delete(timer);
      this.#run(refs);
    }, SECOND_LOOK_MS);
    timer.unref();
    this.#secondLooks.add(timer);
  }

  /** Lets pushes under way finish (each bounded by the client's time-out); cuts waits for retries. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#secondLooks) clearTimeout(timer);
    this.#secondLooks.clear();
    this.#d.client.close();
    await Promise.all([...this.#running]);
  }

  #run(refs: readonly CardRef[]): void {
    const run = this.#push(refs).catch((err: unknown) => this.#d.log.warn({ err }, 'push reload failed'));
    this.#running.add(run);
    void run.finally(() => this.#running.delete(run));
  }

  async #push(refs: readonly CardRef[]): Promise<void> {
    const claimed = await this.#d.markers.claimAwaitingReload(refs, this.#d.clock.now());
    await Promise.all(claimed.map((context) => this.#reload(context)));
  }

  async #reload({ ref, contextThreadId }: ClaimedContext): Promise<void> {
    const d = this.#d;
    const line = { cardKey: ref.cardKey, workspaceId: ref.workspaceId, customerId: ref.customerId, threadId: contextThreadId };
    const config = await d.ids.idOf(ref.cardKey);
    let outcome: PlainReloadOutcome;
    let detail: string | undefined;
    if (!config.found) {
      outcome = config.outcome;
      detail = config.detail;
    } else {
      const result = await d.client.reloadCustomerCardInstance({ customerId: ref.customerId, customerCardConfigId: config.id, threadId: contextThreadId });
      outcome = result.ok ? 'ok' : result.outcome;
      detail = result.ok ? undefined : result.detail;
    }
    d.metrics.plainReloads.inc({ outcome });
    if (outcome === 'ok') d.log.info({ ...line, outcome }, 'pushed a reload to Plain');
    // Skips are reported once per card key by CardConfigIds.
    else if (outcome !== 'skipped') d.log.warn({ ...line, outcome, detail }, 'could not push a reload to Plain');
  }
}

/** The push-reload machinery of a worker process, from `plain.api`. */
export function createPushReloads(
  api: PlainApiConfig,
  deps: { redis: RedisClient; keys: KeyLayout; clock: Clock; metrics: Metrics; log: Logger },
): PushReloads {
  const client = new PlainApiClient({ url: api.url, apiKey: api.apiKey, maxRequestsPerMinute: api.maxRequestsPerMinute, clock: deps.clock });
  return new PushReloads({
    markers: new ServedMarkers(deps.redis, deps.keys),
    ids: new CardConfigIds(client, deps.clock, deps.log),
    client,
    clock: deps.clock,
    metrics: deps.metrics,
    log: deps.log,
  });
}

/**
 * The push reloads of a worker process, following `plain.api` across configuration reloads
 * (SIGHUP): a new key, URL or limit builds a new client (its card config ids and rate window
 * start afresh), while pushes under way finish on the old one; `null` or `pushReload: false`
 * turns pushing off from then on.
 */
export class LivePushReloads {
  readonly #build: (api: PlainApiConfig) => PushReloads;
  #current: PushReloads | undefined;
  #api: string;
  readonly #retiring = new Set<Promise<void>>();

  constructor(api: PlainApiConfig | null, build: (api: PlainApiConfig) => PushReloads) {
    this.#build = build;
    this.#api = JSON.stringify(api);
    this.#current = api?.pushReload ? build(api) : undefined;
  }

  /** Puts a (possibly) new `plain.api` in use. */
  update(api: PlainApiConfig | null): void {
    const text = JSON.stringify(api);
    if (text === this.#api) return;
    this.#api = text;
    const old = this.#current;
    this.#current = api?.pushReload ? this.#build(api) : undefined;
    if (old) {
      const retired = old.close();
      this.#retiring.add(retired);
      void retired.finally(() => this.#retiring.delete(retired));
    }
  }

  cardsLanded(refs: readonly CardRef[]): void {
    this.#current?.cardsLanded(refs);
  }

  async close(): Promise<void> {
    await Promise.all([this.#current?.close(), ...this.#retiring]);
  }
}
