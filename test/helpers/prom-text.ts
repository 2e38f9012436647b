/**
 * A reader for Prometheus' text exposition format (what `/metrics` answers), for assertions on
 * exact sample values.
 *
 * ```ts
 * const samples = parsePromText(await (await fetch(`${url}/metrics`)).text());
 * sampleSum(samples, 'cardproxy_card_lookups_total', { result: 'miss' });   // summed over card_key
 * seriesValues(samples, 'cardproxy_card_lookups_total', ['card_key', 'result']);
 * // → { 'alpha miss': 2, 'beta fresh': 1, … }
 * ```
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE_LINE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL_PAIR = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Every sample of a scrape; `# HELP` / `# TYPE` lines and blank lines are skipped. */
export function parsePromText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? '').matchAll(LABEL_PAIR)) labels[name!] = unescapeLabel(value!);
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

const matches = (sample: Sample, name: string, labels: Record<string, string>): boolean =>
  sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v);

/** The samples of `name` whose labels include `labels`. */
export function samplesOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => matches(s, name, labels));
}

/** The sum of the samples of `name` whose labels include `labels` (0 when there are none). */
export function sampleSum(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samplesOf(samples, name, labels).reduce((sum, s) => sum + s.value, 0);
}

/**
 * Every series of `name` as `"<value of labelNames[0]> <value of labelNames[1]> …" → value`,
 * summed over the labels not named; series whose value is 0 are left out.
 */
export function seriesValues(samples: readonly Sample[], name: string, labelNames: readonly string[], labels: Record<string, string> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samplesOf(samples, name, labels)) {
    const key = labelNames.map((l) => s.labels[l] ?? '').join(' ');
    out[key] = (out[key] ?? 0) + s.value;
  }
  for (const [key, value] of Object.entries(out)) if (value === 0) delete out[key];
  return out;
}
