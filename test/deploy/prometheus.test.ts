/**
 * The dashboard and the alert rules against a real Prometheus scraping a real cardproxy: a `serve`
 * and a `worker` process (`node dist/cli.js`, real Redis, a fake upstream) get known traffic, then
 * Debian's `prometheus` scrapes both every second with deploy/prometheus/alerts.yml loaded. Every
 * PromQL expression of grafana/dashboards/cardproxy.json (Grafana variables substituted) and of
 * the alert rules is evaluated through Prometheus' HTTP API: none may fail, every metric one names
 * must have series, every dashboard query must return data, and every alert rule must evaluate
 * without error.
 *
 * Skipped when `prometheus` is not installed, except under CI (`CI` set), where .ci/run installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandGrafanaVariables, parseYamlSubset, queryParts, type Yaml } from '../helpers/deploy-parsing.js';
import { cardsBody, deleteByPrefix, redisUrl } from '../helpers/harness.js';
import { cardsReply, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { parsePromText, sampleSum } from '../helpers/prom-text.js';
import { freePort } from '../helpers/free-port.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const installed = spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0;
const underCi = Boolean(process.env.CI);

// ---------------------------------------------------------------------------------------------
// What is evaluated
// ---------------------------------------------------------------------------------------------

interface Panel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(join(ROOT, 'grafana/dashboards/cardproxy.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ name: string; definition?: string }> };
};
const dashboardQueries = dashboard.panels
  .flatMap((panel) => [panel, ...(panel.panels ?? [])])
  .flatMap((panel) => (panel.targets ?? []).filter((t) => t.expr).map((t) => ({ what: `panel "${panel.title}"`, expr: expandGrafanaVariables(t.expr!) })));

const asRecord = (value: Yaml | undefined): Record<string, Yaml> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {};
const asArray = (value: Yaml | undefined): Yaml[] => (Array.isArray(value) ? value : []);
const alertsFile = 'deploy/prometheus/alerts.yml';
const alertRules = asArray(asRecord(parseYamlSubset(readFileSync(join(ROOT, alertsFile), 'utf8'), alertsFile)).groups)
  .flatMap((group) => asArray(asRecord(group).rules))
  .map((rule) => ({ what: `alert ${String(asRecord(rule).alert)}`, name: String(asRecord(rule).alert), expr: String(asRecord(rule).expr) }));

/** Every metric name the expressions select (histogram series names included). */
function metricNames(exprs: readonly string[]): string[] {
  return [...new Set(exprs.flatMap((expr) => queryParts(expr).selectors.map((s) => s.metric)))].sort();
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      keep(Buffer.from(`spawn failed: ${err.message}\n`));
      resolve(null);
    });
  });
  return { name, child, output: () => output, exited };
}

async function stop(proc: Proc | undefined, timeoutMs = 5000): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  await proc.exited;
  clearTimeout(timer);
}

/** Polls `check` every 100 ms until it returns a truthy value; the error names `what()`. */
async function waitFor<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}


// ---------------------------------------------------------------------------------------------
// Prometheus' HTTP API
// ---------------------------------------------------------------------------------------------

interface ApiAnswer<T> {
  status: 'success' | 'error';
  data: T;
  errorType?: string;
  error?: string;
  warnings?: string[];
}
interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

let promUrl = '';
async function api<T>(path: string, params: Record<string, string | string[]> = {}): Promise<ApiAnswer<T>> {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) for (const v of [value].flat()) search.append(key, v);
  const res = await fetch(`${promUrl}${path}?${search}`);
  return (await res.json()) as ApiAnswer<T>;
}
const instantQuery = (query: string) => api<{ resultType: string; result: VectorSample[] }>('/api/v1/query', { query });

// ---------------------------------------------------------------------------------------------

if (!installed && !underCi) {
  describe('a real Prometheus scraping cardproxy', () => {
    it.skip('skipped: `prometheus` is not installed (Debian: apt-get install prometheus); under CI (CI set) this test runs and .ci/run installs it', () => {});
  });
} else {
  // Two budgets: the dashboard and the alerts must follow the configured one, not a fixed value.
  describe.each([2000, 10_000])('a real Prometheus scraping cardproxy with budgetMs %i', (budgetMs) => {
    const procs: Proc[] = [];
    let prometheus: Proc | undefined;
    let upstream: FakeUpstream | undefined;
    let dir = '';
    const prefix = `test-${randomUUID().slice(0, 8)}`;
    const ports = { serve: 0, worker: 0, prometheus: 0 };
    let promtoolCheck = { status: -1 as number | null, output: '' };
    const logs = () => [...procs, prometheus].filter((p): p is Proc => p !== undefined).map((p) => `--- ${p.name}:\n${p.output().slice(-3000)}`).join('\n');

    beforeAll(async () => {
      if (!installed) throw new Error('prometheus is not installed; .ci/run installs it under CI (apt-get install prometheus)');
      dir = mkdtempSync(join(tmpdir(), 'cardproxy-prometheus-'));
      upstream = await startFakeUpstream((call) => {
        if (call.customerId === 'c_404') return { status: 404 };
        // Outlasts the budget: a placeholder, counted in cardproxy_budget_exhausted_total.
        if (call.customerId === 'c_slow') return { body: cardsReply(call), delayMs: budgetMs + 300 };
        return { body: cardsReply(call) };
      });
      [ports.serve, ports.worker] = await Promise.all([freePort(), freePort()]);

      const configFile = join(dir, 'cardproxy.json');
      writeFileSync(
        configFile,
        JSON.stringify({
          listen: { host: '127.0.0.1', port: 0 },
          redis: { url: redisUrl(), keyPrefix: prefix },
          budgetMs,
          upstreams: { legacy: { url: upstream.url, timeoutMs: budgetMs + 5000, retries: 0 } },
          cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy' } },
        }),
      );
      const env = (port: number): NodeJS.ProcessEnv => ({ ...process.env, PORT: String(port), LOG_LEVEL: 'warn' });
      procs.push(start('serve', process.execPath, ['dist/cli.js', 'serve', '--config', configFile], env(ports.serve)));
      procs.push(start('worker', process.execPath, ['dist/cli.js', 'worker', '--config', configFile], env(ports.worker)));
      const serve = `http://127.0.0.1:${ports.serve}`;
      const worker = `http://127.0.0.1:${ports.worker}`;
      await waitFor(async () => (await fetch(`${serve}/readyz`)).ok && (await fetch(`${worker}/readyz`)).ok, 30_000, () => `serve and worker to be ready\n${logs()}`);

      // Known traffic: misses, hits, an unknown key, an integration error, a budget run out, a 400.
      const post = (body: unknown) =>
        fetch(`${serve}/cards`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_prom' },
          body: typeof body === 'string' ? body : JSON.stringify(body),
        }).then((res) => res.status);
      const slow = post(cardsBody(['beta'], 'c_slow'));
      expect(await post(cardsBody(['alpha', 'beta'], 'c_1'))).toBe(200);
      expect(await post(cardsBody(['alpha', 'beta'], 'c_1'))).toBe(200);
      expect(await post(cardsBody(['alpha', 'nope'], 'c_1'))).toBe(200);
      expect(await post(cardsBody(['alpha'], 'c_404'))).toBe(200);
      expect(await post('{')).toBe(400);
      expect(await slow).toBe(200);
      // The slow job ends after its request: wait until the worker counted all three calls.
      await waitFor(
        async () => sampleSum(parsePromText(await (await fetch(`${worker}/metrics`)).text()), 'cardproxy_upstream_request_duration_seconds_count') === 3,
        10_000,
        () => `the worker to finish its three jobs\n${logs()}`,
      );

      // Prometheus: both processes as static targets, the alert rules of the repository.
      copyFileSync(join(ROOT, alertsFile), join(dir, 'alerts.yml'));
      const promConfig = join(dir, 'prometheus.yml');
      writeFileSync(
        promConfig,
        [
          'global:',
          '  scrape_interval: 1s',
          '  scrape_timeout: 900ms',
          '  evaluation_interval: 1s',
          'rule_files:',
          '  - alerts.yml',
          'scrape_configs:',
          '  - job_name: cardproxy-serve',
          '    static_configs:',
          `      - targets: ["127.0.0.1:${ports.serve}"]`,
          '  - job_name: cardproxy-worker',
          '    static_configs:',
          `      - targets: ["127.0.0.1:${ports.worker}"]`,
          '',
        ].join('\n'),
      );
      const check = spawnSync('promtool', ['check', 'config', promConfig], { encoding: 'utf8' });
      promtoolCheck = { status: check.status, output: `${check.stdout}${check.stderr}` };
      // Its port is taken just before it starts, and taken again when something else bound it in
      // between (other test files open sockets all the time): a free port is only free a moment.
      for (let attempt = 1; ; attempt++) {
        ports.prometheus = await freePort();
        const proc = start('prometheus', 'prometheus', [
          `--config.file=${promConfig}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${ports.prometheus}`,
          '--log.level=warn',
        ]);
        prometheus = proc;
        promUrl = `http://127.0.0.1:${ports.prometheus}`;
        const state = await waitFor(
          async () => (proc.child.exitCode !== null ? 'exited' : (await fetch(`${promUrl}/-/ready`)).ok && 'ready'),
          15_000,
          () => `Prometheus to be ready\n${logs()}`,
        );
        if (state === 'ready') break;
        if (attempt === 3 || !proc.output().includes('address already in use')) throw new Error(`Prometheus exited\n${logs()}`);
      }
      // Three scrapes of each target, so that rate() over 1m has points; every rule evaluated.
      await waitFor(
        async () => {
          const scrapes = await instantQuery('count_over_time(up{job=~"cardproxy-.*"}[1m]) >= 3');
          return scrapes.status === 'success' && scrapes.data.result.length === 2;
        },
        15_000,
        () => `three scrapes of both targets\n${logs()}`,
      );
      await waitFor(
        async () => {
          const rules = await api<{ groups: Array<{ rules: Array<{ health: string }> }> }>('/api/v1/rules');
          const all = rules.data.groups.flatMap((g) => g.rules);
          return all.length > 0 && all.every((r) => r.health !== 'unknown');
        },
        10_000,
        () => `every rule to be evaluated\n${logs()}`,
      );
    }, 90_000);

    afterAll(async () => {
      await stop(prometheus);
      await Promise.all(procs.map((p) => stop(p)));
      await upstream?.close();
      const redis = new Redis(redisUrl());
      try {
        await deleteByPrefix(redis, prefix);
      } finally {
        redis.disconnect();
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    }, 20_000);

    it('accepts the configuration and the copied alert rules (promtool check config)', () => {
      expect(promtoolCheck.status, promtoolCheck.output).toBe(0);
      expect(promtoolCheck.output).toMatch(/SUCCESS: 1 rule files? found/);
    });

    it('scrapes the serve and the worker process', async () => {
      const targets = await api<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> }>('/api/v1/targets');
      const summary = targets.data.activeTargets.map((t) => [t.labels.job, t.labels.instance, t.health, t.lastError]).sort();
      expect(summary).toEqual([
        ['cardproxy-serve', `127.0.0.1:${ports.serve}`, 'up', ''],
        ['cardproxy-worker', `127.0.0.1:${ports.worker}`, 'up', ''],
      ]);
    });

    it('has series for every metric the dashboard and the alert rules name', async () => {
      const names = metricNames([...dashboardQueries, ...alertRules].map((q) => q.expr));
      expect(names.length).toBeGreaterThan(10);
      const missing: string[] = [];
      await Promise.all(
        names.map(async (name) => {
          const series = await api<unknown[]>('/api/v1/series', { 'match[]': `{__name__="${name}"}`, start: String(Date.now() / 1000 - 300) });
          expect(series.status, `${name}: ${series.error}`).toBe('success');
          if (series.data.length === 0) missing.push(name);
        }),
      );
      expect(missing.sort(), 'metrics named in queries that cardproxy does not export').toEqual([]);
    });

    it('evaluates every dashboard query without error, and each returns data after the traffic', async () => {
      expect(dashboardQueries.length).toBeGreaterThan(20);
      const results = await Promise.all(dashboardQueries.map(async (q) => ({ ...q, answer: await instantQuery(q.expr) })));
      const errors = results.filter((r) => r.answer.status !== 'success').map((r) => `${r.what}: ${r.answer.errorType}: ${r.answer.error}\n  ${r.expr}`);
      expect(errors).toEqual([]);
      const warnings = results.filter((r) => (r.answer.warnings ?? []).length > 0).map((r) => `${r.what}: ${r.answer.warnings!.join('; ')}`);
      expect(warnings).toEqual([]);
      const empty = results.filter((r) => r.answer.data.result.length === 0).map((r) => `${r.what}: ${r.expr}`);
      expect(empty, 'queries that return no data after known traffic').toEqual([]);
    });

    it('shows the configured budget and the share of answers within it', async () => {
      const budget = await instantQuery('max(cardproxy_budget_seconds)');
      expect(budget.data.result.map((r) => Number(r.value[1]))).toEqual([budgetMs / 1000]);
      // Traffic while Prometheus scrapes, so that the rates are not 0/0.
      const warm = () =>
        fetch(`http://127.0.0.1:${ports.serve}/cards`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_prom' },
          body: JSON.stringify(cardsBody(['alpha', 'beta'], 'c_1')),
        }).then((res) => res.status);
      const within = dashboardQueries.find((q) => q.what === 'panel "Within budget"')!;
      const value = await waitFor(
        async () => {
          expect(await warm()).toBe(200);
          const share = await instantQuery(within.expr);
          expect(share.status).toBe('success');
          const v = Number(share.data.result[0]?.value[1]);
          return Number.isNaN(v) ? undefined : v;
        },
        15_000,
        () => `a within-budget share\n${logs()}`,
      );
      // Warm answers take milliseconds, far within either budget.
      expect(value).toBe(1);
      const line = dashboardQueries.find((q) => q.what === 'panel "/cards latency vs the budget"' && q.expr.includes('cardproxy_budget_seconds'))!;
      expect(Number((await instantQuery(line.expr)).data.result[0]!.value[1])).toBe(budgetMs / 1000);
      // Where waits end: the budget less its 5 % reserve, and less the few ms that c_slow's wait
      // ended past its deadline (its final cache read) while that counts.
      const waitsEnd = dashboardQueries.find((q) => q.what === 'panel "/cards latency vs the budget"' && q.expr.includes('cardproxy_budget_reserve_seconds'))!;
      const waitsEndMs = Number((await instantQuery(waitsEnd.expr)).data.result[0]!.value[1]) * 1000;
      const planned = budgetMs - Math.min(100, budgetMs * 0.05);
      expect(waitsEndMs).toBeLessThanOrEqual(planned + 1e-6);
      expect(waitsEndMs).toBeGreaterThan(planned - 25);
    });

    it('evaluates every alert expression without error', async () => {
      expect(alertRules.length).toBeGreaterThanOrEqual(4);
      const results = await Promise.all(alertRules.map(async (r) => ({ ...r, answer: await instantQuery(r.expr) })));
      const errors = results.filter((r) => r.answer.status !== 'success').map((r) => `${r.what}: ${r.answer.errorType}: ${r.answer.error}\n  ${r.expr}`);
      expect(errors).toEqual([]);
      // With both processes up, nothing says a target or the worker is gone.
      for (const name of ['CardproxyTargetDown', 'CardproxyNoRefreshWorker']) {
        expect(results.find((r) => r.name === name)?.answer.data.result, name).toEqual([]);
      }
    });

    it('loads every alert rule of alerts.yml and evaluates each without error', async () => {
      const rules = await api<{ groups: Array<{ name: string; rules: Array<{ name: string; type: string; health: string; lastError?: string }> }> }>('/api/v1/rules');
      expect(rules.status).toBe('success');
      const loaded = rules.data.groups.flatMap((g) => g.rules);
      expect(loaded.map((r) => r.name).sort()).toEqual(alertRules.map((r) => r.name).sort());
      const unhealthy = loaded.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
      expect(unhealthy).toEqual([]);
    });

    it('answers the label queries of the dashboard variables with the configured values', async () => {
      const variables = dashboard.templating.list.filter((v) => v.definition?.startsWith('label_values('));
      expect(variables.map((v) => v.name).sort()).toEqual(['card_key', 'upstream']);
      const expected: Record<string, string[]> = { card_key: ['alpha', 'beta'], upstream: ['legacy'] };
      for (const variable of variables) {
        const [, metric, label] = /^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$/.exec(variable.definition!) ?? [];
        const values = await api<string[]>(`/api/v1/label/${label}/values`, { 'match[]': metric! });
        expect(values.status).toBe('success');
        expect(values.data.sort(), variable.name).toEqual(expected[variable.name]);
      }
    });
  });
}
