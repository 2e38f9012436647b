/**
 * The operator console's live overview (`GET /admin/overview`): this process's metrics from its
 * own registry, summed over card keys into the figures an operator reads at a glance. Counters
 * are totals since the process started; the console turns two readings into rates. Metrics that
 * are not registered (webhooks, warming) are null, so the page shows them once they exist.
 */
import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';

export interface UpstreamOverview {
  readonly upstream: string;
  readonly calls: number;
  /** Calls whose outcome was `retriable_error` or `integration_error`. */
  readonly errors: number;
  readonly totalSeconds: number;
  /** Approximate 95th percentile from the histogram buckets, null before the first call. */
  readonly p95Seconds: number | null;
}

export interface QueueOverview {
  readonly upstream: string;
  readonly waiting: number;
  readonly active: number;
  readonly delayed: number;
  readonly failed: number;
}

export interface Overview {
  readonly at: string;
  /** `/cards` requests answered by this process. */
  readonly requests: number;
  /** Card look-ups by `result` (fresh, stale, miss, reload, negative). */
  readonly lookups: Record<string, number>;
  /** Cards served by `source` (cache, stale, refreshed, placeholder, error). */
  readonly served: Record<string, number>;
  readonly budgetExhausted: number;
  readonly unknownCardKeys: number;
  readonly queues: QueueOverview[];
  readonly upstreams: UpstreamOverview[];
  /** `cardproxy_webhooks_total` by outcome, or null when this build has no webhooks. */
  readonly webhooks: Record<string, number> | null;
  /** Refreshes enqueued by trigger and warming requests dropped, or null when not registered. */
  readonly warming: { readonly enqueued: Record<string, number>; readonly dropped: number | null } | null;
}

type Values = ReadonlyArray<MetricValue<string> & { metricName?: string }>;

/** Reads the registry (running its collectors, e.g. queue depths) and summarizes it. */
export async function buildOverview(registry: Registry, now: number): Promise<Overview> {
  const metrics = new Map<string, Values>(
    (await registry.getMetricsAsJSON()).map((m) => [m.name, (m as MetricObjectWithValues<MetricValue<string>>).values as Values]),
  );
  const get = (name: string): Values | undefined => metrics.get(name);
  const enqueued = get('cardproxy_refreshes_enqueued_total');
  const dropped = get('cardproxy_warming_dropped_total');
  const webhooks = get('cardproxy_webhooks_total');
  return {
    at: new Date(now).toISOString(),
    requests: sum(get('cardproxy_http_request_duration_seconds'), (v) => v.metricName?.endsWith('_count') === true && v.labels.route === '/cards'),
    lookups: sumBy(get('cardproxy_card_lookups_total'), 'result'),
    served: sumBy(get('cardproxy_cards_served_total'), 'source'),
    budgetExhausted: sum(get('cardproxy_budget_exhausted_total')),
    unknownCardKeys: sum(get('cardproxy_unknown_card_keys_total')),
    queues: queues(get('cardproxy_refresh_jobs')),
    upstreams: upstreams(get('cardproxy_upstream_request_duration_seconds')),
    webhooks: webhooks ? sumBy(webhooks, 'outcome') : null,
    warming: enqueued || dropped ? { enqueued: sumBy(enqueued, 'trigger'), dropped: dropped ? sum(dropped) : null } : null,
  };
}

function sum(values: Values | undefined, keep: (v: Values[number]) => boolean = () => true): number {
  return (values ?? []).reduce((total, v) => (keep(v) ? total + v.value : total), 0);
}

function sumBy(values: Values | undefined, label: string): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const v of values ?? []) {
    const key = String(v.labels[label] ?? '');
    totals[key] = (totals[key] ?? 0) + v.value;
  }
  return totals;
}

function queues(values: Values | undefined): QueueOverview[] {
  const byUpstream = new Map<string, { waiting: number; active: number; delayed: number; failed: number }>();
  for (const v of values ?? []) {
    const upstream = String(v.labels.upstream);
    const entry = byUpstream.get(upstream) ?? { waiting: 0, active: 0, delayed: 0, failed: 0 };
    const state = String(v.labels.state);
    if (state === 'waiting' || state === 'active' || state === 'delayed' || state === 'failed') entry[state] += v.value;
    byUpstream.set(upstream, entry);
  }
  return [...byUpstream].map(([upstream, counts]) => ({ upstream, ...counts }));
}

function upstreams(values: Values | undefined): UpstreamOverview[] {
  const byUpstream = new Map<string, { calls: number; errors: number; totalSeconds: number; buckets: Map<number, number> }>();
  for (const v of values ?? []) {
    const upstream = String(v.labels.upstream);
    const entry = byUpstream.get(upstream) ?? { calls: 0, errors: 0, totalSeconds: 0, buckets: new Map<number, number>() };
    byUpstream.set(upstream, entry);
    if (v.metricName?.endsWith('_count')) {
      entry.calls += v.value;
      if (v.labels.outcome !== 'ok') entry.errors += v.value;
    } else if (v.metricName?.endsWith('_sum')) {
      entry.totalSeconds += v.value;
    } else if (v.metricName?.endsWith('_bucket')) {
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      entry.buckets.set(le, (entry.buckets.get(le) ?? 0) + v.value);
    }
  }
  return [...byUpstream].map(([upstream, e]) => ({
    upstream,
    calls: e.calls,
    errors: e.errors,
    totalSeconds: e.totalSeconds,
    p95Seconds: quantileFromBuckets(e.buckets, e.calls, 0.95),
  }));
}

/**
 * The bucket boundary below which `q` of the observations fall (cumulative buckets, as
 * Prometheus keeps them): an upper bound of the quantile, like `histogram_quantile` without the
 * interpolation. Null without observations; the highest finite bound when it falls in `+Inf`.
 */
export function quantileFromBuckets(cumulative: ReadonlyMap<number, number>, count: number, q: number): number | null {
  if (count === 0) return null;
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  for (const le of bounds) {
    if (cumulative.get(le)! >= q * count) return Number.isFinite(le) ? le : (bounds.filter(Number.isFinite).at(-1) ?? null);
  }
  return null;
}
