/**
 * A Prometheus histogram whose observations are plain numbers per label set, for the metric every
 * request observes (`cardproxy_http_request_duration_seconds`). prom-client's `Histogram` converts,
 * validates and hashes the labels on every observation, even through a child from `labels()`:
 * about half a microsecond per request, measured, where counting into a kept slot is a few
 * nanoseconds. A caller resolves a label set's slot once (`slot(labels)`) and keeps it.
 *
 * Registered in a prom-client registry like any metric: what it exposes (text and JSON) is what a
 * prom-client `Histogram` with the same observations exposes (tested against one).
 */
import type { Metric, Registry } from 'prom-client';

export interface HistogramSlot {
  observe(value: number): void;
}

interface Slot extends HistogramSlot {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per bucket (not cumulative), in `buckets` order. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** One exposed sample, as prom-client's metrics hand them to the registry. */
interface Sample {
  readonly labels: Record<string, string | number>;
  readonly sharedLabels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly metricName: string;
}

export class TalliedHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly L[];
  readonly #buckets: readonly number[];
  /** One slot per label set, by the label values joined (label values never hold a newline here). */
  readonly #slots = new Map<string, Slot>();

  constructor(opts: { name: string; help: string; labelNames: readonly L[]; buckets: readonly number[]; registers: readonly Registry[] }) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    this.#buckets = [...opts.buckets].sort((a, b) => a - b);
    for (const registry of opts.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The slot of one label set: made once, then kept by the caller. */
  slot(labels: Readonly<Record<L, string>>): HistogramSlot {
    const id = this.labelNames.map((name) => labels[name]).join('\n');
    let slot = this.#slots.get(id);
    if (slot === undefined) {
      const buckets = this.#buckets;
      const made: Slot = {
        labels: Object.fromEntries(this.labelNames.map((name) => [name, labels[name]])),
        counts: new Float64Array(buckets.length),
        sum: 0,
        count: 0,
        observe(value: number): void {
          let i = 0;
          while (i < buckets.length && value > buckets[i]!) i++;
          if (i < buckets.length) made.counts[i]! += 1;
          made.sum += value;
          made.count += 1;
        },
      };
      slot = made;
      this.#slots.set(id, slot);
    }
    return slot;
  }

  /** For the text exposition (prom-client's registry). */
  async getForPromString(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: string }> {
    const values: Sample[] = [];
    for (const slot of this.#slots.values()) {
      const bucketName = `${this.name}_bucket`;
      let cumulative = 0;
      for (let i = 0; i < this.#buckets.length; i++) {
        cumulative += slot.counts[i]!;
        values.push({ labels: { le: this.#buckets[i]! }, sharedLabels: slot.labels, value: cumulative, metricName: bucketName });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: slot.labels, value: slot.count, metricName: bucketName });
      values.push({ labels: {}, sharedLabels: slot.labels, value: slot.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: slot.labels, value: slot.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** For the JSON form (`registry.getMetricsAsJSON()`): every sample's labels in one object. */
  async get(): Promise<{ name: string; help: string; type: string; values: Array<Omit<Sample, 'sharedLabels'>>; aggregator: string }> {
    const data = await this.getForPromString();
    return { ...data, values: data.values.map(({ labels, sharedLabels, ...rest }) => ({ ...rest, labels: { ...sharedLabels, ...labels } })) };
  }

  /** Zero every slot (kept slots stay valid). */
  reset(): void {
    for (const slot of this.#slots.values()) {
      slot.counts.fill(0);
      slot.sum = 0;
      slot.count = 0;
    }
  }
}
