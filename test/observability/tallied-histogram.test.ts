/**
 * TalliedHistogram exposes what prom-client's own Histogram exposes for the same observations,
 * in the text format and as JSON, beside prom-client's other metrics in one registry.
 */
import { describe, expect, it } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { TalliedHistogram } from '../../src/observability/tallied-histogram.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.1, 1];
const OBSERVATIONS: Array<[Record<'method' | 'route' | 'status_code', string>, number]> = [
  [{ method: 'POST', route: '/cards', status_code: '200' }, 0.0004],
  [{ method: 'POST', route: '/cards', status_code: '200' }, 0.001], // on a bound: counted in it
  [{ method: 'POST', route: '/cards', status_code: '200' }, 0.0063],
  [{ method: 'POST', route: '/cards', status_code: '401' }, 0.00002],
  [{ method: 'GET', route: '/metrics', status_code: '200' }, 0.05],
  [{ method: 'POST', route: '/cards', status_code: '200' }, 3], // past the last bound: +Inf only
  [{ method: 'GET', route: '/readyz', status_code: '503' }, 0.2],
];

function registries(): { ours: Registry; theirs: Registry; tallied: TalliedHistogram<'method' | 'route' | 'status_code'> } {
  const ours = new Registry();
  const theirs = new Registry();
  const options = { name: 'x_duration_seconds', help: 'Duration.', labelNames: ['method', 'route', 'status_code'] as const, buckets: BUCKETS };
  const tallied = new TalliedHistogram({ ...options, registers: [ours] });
  const histogram = new Histogram({ ...options, labelNames: [...options.labelNames], registers: [theirs] });
  for (const [labels, value] of OBSERVATIONS) {
    tallied.slot(labels).observe(value);
    histogram.observe(labels, value);
  }
  // Another metric in each registry, so the histogram is exposed among others.
  for (const registry of [ours, theirs]) new Counter({ name: 'y_total', help: 'Y.', registers: [registry] }).inc(2);
  return { ours, theirs, tallied };
}

describe('TalliedHistogram', () => {
  it('exposes what a prom-client Histogram exposes for the same observations (text and JSON)', async () => {
    const { ours, theirs } = registries();
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('x_duration_seconds_bucket{le="0.001",method="POST",route="/cards",status_code="200"} 2');
    expect(text).toContain('x_duration_seconds_bucket{le="+Inf",method="POST",route="/cards",status_code="200"} 4');
    expect(text).toContain('x_duration_seconds_count{method="GET",route="/readyz",status_code="503"} 1');
    // The same samples as JSON (prom-client adds an empty `exemplar` to its own).
    const withoutExemplars = (metrics: Awaited<ReturnType<Registry['getMetricsAsJSON']>>) =>
      metrics.map((m) => ({ ...m, values: (m as { values: Array<Record<string, unknown>> }).values.map(({ exemplar: _exemplar, ...v }) => v) }));
    expect(withoutExemplars(await ours.getMetricsAsJSON())).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
  });

  it('keeps one slot per label set, and a kept slot counts after a reset', async () => {
    const { ours, tallied } = registries();
    const slot = tallied.slot({ method: 'POST', route: '/cards', status_code: '200' });
    expect(tallied.slot({ method: 'POST', route: '/cards', status_code: '200' })).toBe(slot);
    tallied.reset();
    slot.observe(0.002);
    const text = await ours.metrics();
    expect(text).toContain('x_duration_seconds_count{method="POST",route="/cards",status_code="200"} 1');
    expect(text).toContain('x_duration_seconds_bucket{le="0.001",method="POST",route="/cards",status_code="200"} 0');
    expect(text).toContain('x_duration_seconds_bucket{le="0.005",method="POST",route="/cards",status_code="200"} 1');
    expect(text).toContain('x_duration_seconds_sum{method="POST",route="/cards",status_code="200"} 0.002');
    expect(text).toContain('x_duration_seconds_count{method="GET",route="/metrics",status_code="200"} 0');
  });
});
