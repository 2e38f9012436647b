/**
 * Checks the deployment files against each other and against the code: docker-compose.yml, the
 * Dockerfile, Prometheus' configuration and alert rules, Grafana's provisioning and dashboard, and
 * the cardproxy configuration used by compose.
 *
 * No YAML library is installed, so the YAML files are kept in a small subset (block maps and
 * lists, plain / double-quoted / single-quoted scalars, one-line flow lists, `{}`; no anchors, no
 * multi-line strings) and read with `parseYamlSubset` (test/helpers/deploy-parsing.ts), which
 * refuses anything else.
 *
 * Every PromQL expression of the dashboard and the alert rules may only use the metrics of
 * SPEC section 8 (plus `_bucket`/`_sum`/`_count` of the histograms) and the Node default metrics
 * listed in `NODE_DEFAULT_METRICS`, with their labels and label values. When `promtool` is
 * installed, the expressions are also parsed by it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { LEGACY_CARD_KEYS } from '../../src/demo/legacy-api.js';
import { Metrics } from '../../src/observability/metrics.js';
import { expandGrafanaVariables, parseYamlSubset, queryParts, type QueryParts, type Yaml, type YamlMap } from '../helpers/deploy-parsing.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const exists = (path: string): boolean => existsSync(join(ROOT, path));

/** The environment the compose services give cardproxy (see docker-compose.yml). */
const COMPOSE_ENV = { CARDPROXY_ADMIN_TOKEN: 'test-admin-token', PLAIN_SIGNING_SECRET: 'test-signing-secret' };
const COMPOSE_CONFIG = 'deploy/cardproxy.compose.json';

// ---------------------------------------------------------------------------------------------
// The metric allow-list
// ---------------------------------------------------------------------------------------------

type MetricType = 'counter' | 'gauge' | 'histogram';
/** Label name → its allowed values (`null`: any value, e.g. from configuration). */
type Labels = Record<string, readonly string[] | null>;

/** SPEC section 8: names, types, labels and fixed label values. */
export const SPEC_METRICS: Readonly<Record<string, { type: MetricType; labels: Labels }>> = {
  cardproxy_http_request_duration_seconds: {
    type: 'histogram',
    labels: { method: null, route: null, status_code: null },
  },
  cardproxy_card_lookups_total: {
    type: 'counter',
    labels: { card_key: null, result: ['fresh', 'stale', 'miss', 'reload', 'negative'] },
  },
  cardproxy_cards_served_total: {
    type: 'counter',
    labels: { card_key: null, source: ['cache', 'stale', 'refreshed', 'placeholder', 'error'] },
  },
  cardproxy_upstream_request_duration_seconds: {
    type: 'histogram',
    labels: { upstream: null, outcome: ['ok', 'retriable_error', 'integration_error'] },
  },
  cardproxy_budget_exhausted_total: { type: 'counter', labels: { card_key: null } },
  cardproxy_refresh_jobs: {
    type: 'gauge',
    labels: { upstream: null, state: ['waiting', 'active', 'delayed', 'failed'] },
  },
  // SPEC section 6 lists the event types the log has "at least": any value is allowed.
  cardproxy_events_appended_total: { type: 'counter', labels: { type: null } },
  cardproxy_unknown_card_keys_total: { type: 'counter', labels: {} },
  cardproxy_plain_reloads_total: { type: 'counter', labels: { outcome: ['ok', 'error', 'rate_limited', 'skipped'] } },
  // SPEC 10.4: `type` is a configured event type or `other`.
  cardproxy_webhooks_total: { type: 'counter', labels: { type: null, outcome: ['accepted', 'duplicate', 'ignored', 'rejected'] } },
  cardproxy_refreshes_enqueued_total: { type: 'counter', labels: { upstream: null, trigger: ['request', 'reload', 'warm', 'ahead', 'invalidate'] } },
  cardproxy_warming_dropped_total: { type: 'counter', labels: { upstream: null } },
};

/** Metrics beyond SPEC section 8 that the dashboard and alerts use. */
export const MORE_METRICS: Readonly<Record<string, { type: MetricType; labels: Labels }>> = {
  // The configured budget and where waits end under it, so that panels and alerts follow it (README, "Dashboard and alerts").
  cardproxy_budget_seconds: { type: 'gauge', labels: {} },
  cardproxy_budget_reserve_seconds: { type: 'gauge', labels: {} },
  cardproxy_cards_over_budget_total: { type: 'counter', labels: {} },
  // How long /cards requests may have waited before they were read (README, "How a card is resolved").
  cardproxy_cards_queued_seconds_total: { type: 'counter', labels: {} },
  // Redis health (README, "Reliability"): the roles are command, jobs, subscriber, worker:<upstream>.
  cardproxy_redis_up: { type: 'gauge', labels: { role: null } },
  cardproxy_degraded_answers_total: { type: 'counter', labels: {} },
  cardproxy_served_markers_lost_total: { type: 'counter', labels: {} },
  // The refresh queue's bound and removed jobs (README, "Priorities and bounds").
  cardproxy_refresh_dropped_total: { type: 'counter', labels: { upstream: null, reason: ['queue_full', 'removed'] } },
  // Jobs run again after their lock lapsed (README, "A crashed worker loses nothing").
  cardproxy_refresh_stalled_total: { type: 'counter', labels: { upstream: null } },
};

/** prom-client's default metrics, registered with the prefix `cardproxy_`, that dashboards may use. */
export const NODE_DEFAULT_METRICS: readonly string[] = [
  'cardproxy_process_cpu_seconds_total',
  'cardproxy_process_resident_memory_bytes',
  'cardproxy_nodejs_heap_size_used_bytes',
  'cardproxy_nodejs_heap_size_total_bytes',
  'cardproxy_nodejs_eventloop_lag_seconds',
  'cardproxy_nodejs_eventloop_lag_p99_seconds',
];

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['job', 'instance'];

/** Every metric name a query may use, with its allowed labels. */
export const ALLOWED_METRICS: ReadonlyMap<string, Labels> = (() => {
  const allowed = new Map<string, Labels>();
  for (const [name, { type, labels }] of Object.entries({ ...SPEC_METRICS, ...MORE_METRICS })) {
    if (type === 'histogram') {
      allowed.set(`${name}_bucket`, { ...labels, le: null });
      allowed.set(`${name}_sum`, labels);
      allowed.set(`${name}_count`, labels);
    } else {
      allowed.set(name, labels);
    }
  }
  for (const name of NODE_DEFAULT_METRICS) allowed.set(name, {});
  return allowed;
})();

/** The metric names the dashboard may use. */
export const ALLOWED_METRIC_NAMES: ReadonlySet<string> = new Set(ALLOWED_METRICS.keys());

// ---------------------------------------------------------------------------------------------
// YAML and PromQL helpers (the readers live in test/helpers/deploy-parsing.ts)
// ---------------------------------------------------------------------------------------------

export { expandGrafanaVariables, parseYamlSubset, queryParts };

function readYaml(path: string): YamlMap {
  const value = parseYamlSubset(read(path), path);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path}: not a mapping`);
  return value;
}

const asMap = (value: Yaml | undefined, what: string): YamlMap => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} is not a mapping`);
  return value;
};
const asList = (value: Yaml | undefined, what: string): Yaml[] => {
  if (!Array.isArray(value)) throw new Error(`${what} is not a list`);
  return value;
};
const asStrings = (value: Yaml | undefined, what: string): string[] =>
  asList(value, what).map((item) => {
    if (typeof item !== 'string') throw new Error(`${what}: ${JSON.stringify(item)} is not a string`);
    return item;
  });

/**
 * Problems of one expression against an allow-list: unknown metrics, unknown labels, values
 * outside a label's fixed set. Empty when the expression is fine.
 */
export function queryProblems(expr: string, allowed: ReadonlyMap<string, Labels> = ALLOWED_METRICS): string[] {
  const problems: string[] = [];
  let parts: QueryParts;
  try {
    parts = queryParts(expr);
  } catch (error) {
    return [(error as Error).message];
  }
  if (parts.selectors.length === 0) problems.push(`no metric in ${expr}`);
  const usable = new Set(TARGET_LABELS);
  for (const { metric, matchers } of parts.selectors) {
    const labels = allowed.get(metric);
    if (!labels) {
      problems.push(`metric ${metric} is not in the allow-list (in ${expr})`);
      continue;
    }
    for (const name of Object.keys(labels)) usable.add(name);
    for (const { label, op, value } of matchers) {
      if (TARGET_LABELS.includes(label)) continue;
      if (!Object.hasOwn(labels, label)) {
        problems.push(`${metric} has no label ${label} (in ${expr})`);
        continue;
      }
      const values = labels[label];
      if (!values || value.includes('$')) continue;
      // Exact values, and regex alternatives without regex operators (a "." taken literally), must
      // be known values.
      const regex = op === '=~' || op === '!~';
      for (const alternative of regex ? value.split('|') : [value]) {
        if (regex && /[\\^$*+?()[\]{}]/.test(alternative)) continue;
        if (!values.includes(alternative)) problems.push(`${metric}: ${label}="${alternative}" is not one of ${values.join(', ')} (in ${expr})`);
      }
    }
  }
  for (const label of parts.groupingLabels) {
    if (!usable.has(label)) problems.push(`grouping label ${label} belongs to none of the metrics of ${expr}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

interface DashboardPanel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr?: string; datasource?: { uid?: string }; refId?: string }>;
  panels?: DashboardPanel[];
  fieldConfig?: {
    defaults?: {
      thresholds?: { steps?: Array<{ value: number | null }> };
      custom?: { thresholdsStyle?: { mode?: string } };
    };
  };
}

interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: DashboardPanel[];
  templating: { list: Array<{ name: string; type: string; query?: unknown; definition?: string; datasource?: { uid?: string } }> };
}

const dashboard = JSON.parse(read('grafana/dashboards/cardproxy.json')) as Dashboard;
const allPanels: DashboardPanel[] = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
const dashboardExprs: Array<{ panel: string; expr: string }> = allPanels.flatMap((panel) =>
  (panel.targets ?? []).map((target) => ({ panel: panel.title ?? String(panel.id), expr: target.expr ?? '' })),
);
const composeConfig = parseConfig(JSON.parse(read(COMPOSE_CONFIG)), COMPOSE_ENV);

const compose = readYaml('docker-compose.yml');
const services = asMap(compose.services, 'services');
const service = (name: string): YamlMap => asMap(services[name], `services.${name}`);

/** `host:container[:mode]` volume entries of a service, bind mounts only (`./…`). */
function bindMounts(name: string): Array<{ host: string; container: string }> {
  return asStrings(service(name).volumes ?? [], `services.${name}.volumes`)
    .filter((volume) => volume.startsWith('./'))
    .map((volume) => {
      const [host, container] = volume.split(':');
      return { host: posix.normalize(host!), container: container! };
    });
}

const prometheus = readYaml('deploy/prometheus/prometheus.yml');

describe('deploy/cardproxy.compose.json', () => {
  it('validates with parseConfig given the environment compose passes', () => {
    expect(composeConfig.budgetMs).toBe(2000);
    expect(composeConfig.listen).toEqual({ host: '0.0.0.0', port: 8080, tls: null, opsPort: null, acceptors: 16 });
    expect(composeConfig.redis.url).toBe('redis://redis:6379');
    expect(composeConfig.admin.token).toBe(COMPOSE_ENV.CARDPROXY_ADMIN_TOKEN);
    expect(composeConfig.plain.signingSecrets).toEqual([COMPOSE_ENV.PLAIN_SIGNING_SECRET]);
    expect(composeConfig.upstreams.legacy?.url).toBe('http://legacy-api:8090/cards');
  });

  it('configures exactly the cards the demo legacy API serves, all on the legacy upstream', () => {
    expect(Object.keys(composeConfig.cards).sort()).toEqual([...LEGACY_CARD_KEYS].sort());
    for (const card of Object.values(composeConfig.cards)) expect(card.upstream).toBe('legacy');
  });

  it('refuses to start without the secrets from the environment', () => {
    expect(() => parseConfig(JSON.parse(read(COMPOSE_CONFIG)), {})).toThrow(/CARDPROXY_ADMIN_TOKEN[\s\S]*PLAIN_SIGNING_SECRET|PLAIN_SIGNING_SECRET[\s\S]*CARDPROXY_ADMIN_TOKEN/);
  });
});

describe('Dockerfile and .dockerignore', () => {
  const dockerfile = read('Dockerfile');
  const instructions = dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages = instructions.filter((line) => /^FROM\s/i.test(line));
  const runtime = instructions.slice(instructions.lastIndexOf(stages.at(-1)!));
  const ignored = read('.dockerignore')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  it('is multi-stage on node 24 (an LTS line) and runs the CLI as the non-root node user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/node:24-bookworm-slim/);
    expect(instructions).toContain('RUN npm ci --no-audit --no-fund');
    expect(instructions.some((line) => /^RUN npm run build\b/.test(line))).toBe(true);
    expect(runtime.some((line) => /^RUN npm ci --omit=dev\b/.test(line))).toBe(true);
    expect(runtime).toContain('USER node');
    expect(runtime).toContain('ENV NODE_ENV=production');
    expect(runtime).toContain('EXPOSE 8080');
    expect(runtime).toContain('ENTRYPOINT ["node", "dist/cli.js"]');
    expect(runtime).toContain('CMD ["start", "--config", "config/default.json"]');
    expect(runtime.find((line) => line.startsWith('HEALTHCHECK'))).toMatch(/fetch\(.*\/healthz/);
    // USER comes after every step that needs root.
    const userAt = runtime.indexOf('USER node');
    expect(runtime.slice(userAt).some((line) => /^(RUN|COPY)\b/.test(line))).toBe(false);
  });

  it("runs a health check that probes $PORT, or $HEALTHCHECK_URL (the ops port behind listen.tls), and fails on anything but 2xx", async () => {
    const line = runtime.find((l) => l.startsWith('HEALTHCHECK'))!;
    const argv = JSON.parse(line.slice(line.indexOf('CMD') + 3)) as string[];
    expect(argv.slice(0, 2)).toEqual(['node', '-e']);
    const seen: string[] = [];
    const listen = (status: number) =>
      new Promise<Server>((resolve) => {
        const server = createServer((req, res) => {
          seen.push(`${status} ${req.method} ${req.url}`);
          res.writeHead(status).end();
        });
        server.listen(0, '127.0.0.1', () => resolve(server));
      });
    const portOf = (server: Server) => (server.address() as AddressInfo).port;
    const up = await listen(200);
    const ops = await listen(200);
    const notReady = await listen(503);
    // A port nothing listens on: a server started and closed again.
    const gone = await listen(200);
    const closedPort = portOf(gone);
    await new Promise((resolve) => gone.close(resolve));
    // The check runs as a child (the servers answer from this process's event loop meanwhile).
    const check = (env: Record<string, string>) =>
      new Promise<number | null>((resolve) => {
        const { HEALTHCHECK_URL: _url, PORT: _port, ...inherited } = process.env;
        execFile(process.execPath, argv.slice(1), { env: { ...inherited, ...env }, timeout: 10_000 }, (err) => resolve(err ? ((err as { code?: number }).code ?? -1) : 0));
      });
    try {
      expect(await check({ PORT: String(portOf(up)) })).toBe(0);
      expect(await check({ PORT: String(portOf(notReady)) })).toBe(1);
      expect(await check({ PORT: String(closedPort) })).toBe(1);
      expect(await check({ PORT: String(closedPort), HEALTHCHECK_URL: `http://127.0.0.1:${portOf(ops)}/healthz` })).toBe(0);
      expect(seen).toEqual(['200 GET /healthz', '503 GET /healthz', '200 GET /healthz']);
    } finally {
      for (const server of [up, ops, notReady]) server.close();
    }
  });

  it('copies only files that exist and that .dockerignore does not exclude', () => {
    const copies = instructions.filter((line) => /^COPY\s/.test(line) && !/--from=/.test(line));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const sources = copy.split(/\s+/).slice(1, -1).filter((word) => !word.startsWith('--'));
      for (const source of sources) {
        expect(exists(source), `${copy}: ${source} does not exist`).toBe(true);
        const top = source.replace(/^\.\//, '').split('/')[0]!;
        expect(ignored, `${copy}: ${source} is excluded by .dockerignore`).not.toContain(top);
      }
    }
    // The runtime stage ships dist/ (from the build stage), package*.json, config/ and deploy/ only.
    const shipped = runtime
      .filter((line) => /^COPY\s/.test(line))
      .flatMap((line) => line.split(/\s+/).slice(1, -1).filter((word) => !word.startsWith('--')));
    expect(shipped.sort()).toEqual(['/app/dist', 'config', 'deploy', 'package-lock.json', 'package.json']);
    for (const excluded of ['node_modules', 'dist', '.git', 'test', '.env']) expect(ignored).toContain(excluded);
  });

  it('starts programs that the build produces (dist/X.js from src/X.ts)', () => {
    for (const program of ['dist/cli.js', 'dist/demo/legacy-api-main.js']) {
      const sourceFile = program.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts');
      expect(exists(sourceFile), `${program} needs ${sourceFile}`).toBe(true);
    }
    expect(exists('config/default.json')).toBe(true);
  });
});

describe('docker-compose.yml', () => {
  it('has the services of the deployment', () => {
    expect(Object.keys(services).sort()).toEqual(['grafana', 'legacy-api', 'prometheus', 'redis', 'serve', 'worker']);
  });

  it('runs Redis 7 with AOF and noeviction on a named volume', () => {
    const redis = service('redis');
    expect(redis.image).toMatch(/^redis:7/);
    const command = asStrings(redis.command, 'redis.command').join(' ');
    expect(command).toMatch(/--appendonly yes\b/);
    expect(command).toMatch(/--maxmemory-policy noeviction\b/);
    const volumes = asStrings(redis.volumes, 'redis.volumes');
    const named = volumes.map((v) => v.split(':')[0]!).filter((v) => !v.startsWith('.') && !v.startsWith('/'));
    expect(named.length).toBe(1);
    expect(Object.keys(asMap(compose.volumes, 'volumes'))).toContain(named[0]);
    expect(volumes).toContain(`${named[0]}:/data`);
  });

  it('builds cardproxy from the Dockerfile and runs serve, worker and the demo API from it', () => {
    for (const name of ['legacy-api', 'serve', 'worker']) {
      expect(service(name).build, name).toBe('.');
      expect(service(name).image, name).toBe('cardproxy:local');
    }
    expect(exists('Dockerfile')).toBe(true);
    expect(asStrings(service('serve').command, 'serve.command')).toEqual(['serve', '--config', COMPOSE_CONFIG]);
    expect(asStrings(service('worker').command, 'worker.command')).toEqual(['worker', '--config', COMPOSE_CONFIG]);
    expect(asStrings(service('legacy-api').entrypoint, 'legacy-api.entrypoint')).toEqual(['node', 'dist/demo/legacy-api-main.js']);
    expect(String(asMap(service('legacy-api').environment, 'legacy-api.environment').PORT)).toBe('8090');
  });

  it('gives serve and worker every environment variable the config refers to, with a default', () => {
    const references = [...read(COMPOSE_CONFIG).matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!);
    expect(new Set(references)).toEqual(new Set(Object.keys(COMPOSE_ENV)));
    for (const name of ['serve', 'worker']) {
      const environment = asMap(service(name).environment, `${name}.environment`);
      for (const variable of references) {
        expect(String(environment[variable]), `${name}.${variable}`).toMatch(new RegExp(`^\\$\\{${variable}:-.+\\}$`));
      }
    }
  });

  it('publishes a port range for serve so that --scale works, and fixed ports for the UIs', () => {
    const servePorts = asStrings(service('serve').ports, 'serve.ports');
    expect(servePorts).toHaveLength(1);
    const [, first, last, target] = /^(\d+)-(\d+):(\d+)$/.exec(servePorts[0]!) ?? [];
    expect(Number(target)).toBe(composeConfig.listen.port);
    expect(Number(last) - Number(first)).toBeGreaterThanOrEqual(2);
    expect(service('worker').ports).toBeUndefined();
    expect(asStrings(service('prometheus').ports, 'prometheus.ports')).toEqual(['9090:9090']);
    expect(asStrings(service('grafana').ports, 'grafana.ports')).toEqual(['3000:3000']);
  });

  it('mounts only files and folders that exist', () => {
    for (const name of Object.keys(services)) {
      for (const { host } of bindMounts(name)) expect(exists(host), `${name}: ${host}`).toBe(true);
    }
  });

  it('has a health check on every service and depends only on health checks that exist', () => {
    for (const [name, value] of Object.entries(services)) {
      const definition = asMap(value, name);
      const test = asStrings(asMap(definition.healthcheck, `${name}.healthcheck`).test, `${name}.healthcheck.test`);
      expect(['CMD', 'CMD-SHELL'], name).toContain(test[0]);
      for (const [dependency, condition] of Object.entries(asMap(definition.depends_on ?? {}, `${name}.depends_on`))) {
        expect(Object.keys(services), `${name} depends on ${dependency}`).toContain(dependency);
        const wanted = asMap(condition, `${name}.depends_on.${dependency}`).condition;
        expect(['service_started', 'service_healthy'], `${name} -> ${dependency}`).toContain(wanted);
      }
    }
    for (const name of ['serve', 'worker']) {
      expect(asMap(asMap(service(name).depends_on, name).redis, name).condition).toBe('service_healthy');
    }
  });

  it('gives Prometheus its configuration and every rule file it names', () => {
    const mounts = bindMounts('prometheus');
    const command = asStrings(service('prometheus').command, 'prometheus.command');
    const configFile = command.find((arg) => arg.startsWith('--config.file='))!.slice('--config.file='.length);
    expect(mounts).toContainEqual({ host: 'deploy/prometheus/prometheus.yml', container: configFile });
    for (const ruleFile of asStrings(prometheus.rule_files, 'rule_files')) {
      const container = posix.join(posix.dirname(configFile), ruleFile);
      expect(mounts).toContainEqual({ host: posix.join('deploy/prometheus', ruleFile), container });
    }
  });

  it('gives Grafana its provisioning and the folder its dashboard provider reads', () => {
    const mounts = bindMounts('grafana');
    expect(mounts).toContainEqual({ host: 'grafana/provisioning', container: '/etc/grafana/provisioning' });
    const providers = asList(readYaml('grafana/provisioning/dashboards/cardproxy.yml').providers, 'providers');
    for (const provider of providers) {
      const path = asMap(asMap(provider, 'provider').options, 'provider.options').path as string;
      const mount = mounts.find((m) => m.container === path);
      expect(mount, `dashboard provider path ${path} is not mounted`).toBeDefined();
      expect(statSync(join(ROOT, mount!.host)).isDirectory()).toBe(true);
      expect(exists(join(mount!.host, 'cardproxy.json'))).toBe(true);
    }
    const environment = asMap(service('grafana').environment, 'grafana.environment');
    expect(String(environment.GF_AUTH_ANONYMOUS_ENABLED)).toBe('true');
    expect(environment.GF_AUTH_ANONYMOUS_ORG_ROLE).toBe('Viewer');
    expect(String(environment.GF_SECURITY_ADMIN_PASSWORD)).toMatch(/^\$\{[A-Z_]+:-.+\}$/);
  });
});

describe('Prometheus', () => {
  const jobs = asList(prometheus.scrape_configs, 'scrape_configs').map((job) => asMap(job, 'scrape config'));
  const job = (name: string): YamlMap => jobs.find((j) => j.job_name === name) ?? {};

  it('scrapes every serve and worker replica through DNS every 5 s', () => {
    expect(asMap(prometheus.global, 'global').scrape_interval).toBe('5s');
    for (const [name, dnsName] of [['cardproxy-serve', 'serve'], ['cardproxy-worker', 'worker']] as const) {
      const sd = asList(job(name).dns_sd_configs, `${name}.dns_sd_configs`).map((c) => asMap(c, name));
      expect(sd).toHaveLength(1);
      expect(sd[0]!.names).toEqual([dnsName]);
      expect(sd[0]!.type).toBe('A');
      expect(sd[0]!.port).toBe(composeConfig.listen.port);
      expect(job(name).metrics_path ?? '/metrics').toBe('/metrics');
      expect(Object.keys(services)).toContain(dnsName);
    }
  });

  it('loads alert rules that exist and only use known metrics (and up)', () => {
    const ruleFiles = asStrings(prometheus.rule_files, 'rule_files');
    expect(ruleFiles.length).toBeGreaterThan(0);
    const allowed = new Map(ALLOWED_METRICS);
    allowed.set('up', {});
    let alerts = 0;
    for (const file of ruleFiles) {
      const path = posix.join('deploy/prometheus', file);
      expect(exists(path), path).toBe(true);
      const groups = asList(readYaml(path).groups, `${path} groups`);
      for (const group of groups) {
        for (const rule of asList(asMap(group, 'group').rules, 'rules')) {
          const { alert, expr, labels, annotations } = asMap(rule, 'rule');
          expect(typeof alert).toBe('string');
          expect(queryProblems(String(expr), allowed), String(alert)).toEqual([]);
          expect(asMap(labels, `${String(alert)}.labels`).severity).toMatch(/^(info|warning|critical)$/);
          expect(typeof asMap(annotations, `${String(alert)}.annotations`).summary).toBe('string');
          alerts++;
        }
      }
    }
    expect(alerts).toBeGreaterThanOrEqual(4);
  });
});

describe('Grafana', () => {
  it('provisions the Prometheus data source with uid "prometheus"', () => {
    const datasources = asList(readYaml('grafana/provisioning/datasources/prometheus.yml').datasources, 'datasources');
    expect(datasources).toHaveLength(1);
    const ds = asMap(datasources[0], 'datasource');
    expect(ds).toMatchObject({ uid: 'prometheus', type: 'prometheus', url: 'http://prometheus:9090' });
  });

  it('has a dashboard with rows, unique panel ids, a valid grid and the prometheus data source', () => {
    expect(dashboard.uid).toBe('cardproxy');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = allPanels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(allPanels.filter((panel) => panel.type === 'row').length).toBeGreaterThanOrEqual(4);
    for (const panel of allPanels) {
      const { x, y, w, h } = panel.gridPos!;
      expect(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, `${panel.title} gridPos`).toBe(true);
      if (panel.type === 'row') continue;
      expect(panel.datasource?.uid, `${panel.title} datasource`).toBe('prometheus');
      expect(panel.targets?.length, `${panel.title} has no query`).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(target.datasource?.uid ?? 'prometheus').toBe('prometheus');
    }
  });

  it('defines the card_key and upstream variables from label values', () => {
    const variables = dashboard.templating.list;
    for (const [name, query] of [
      ['card_key', 'label_values(cardproxy_cards_served_total, card_key)'],
      ['upstream', 'label_values(cardproxy_upstream_request_duration_seconds_count, upstream)'],
    ] as const) {
      const variable = variables.find((v) => v.name === name);
      expect(variable, name).toBeDefined();
      expect(variable!.definition).toBe(query);
      expect(variable!.datasource?.uid).toBe('prometheus');
    }
  });

  it('queries only the allow-listed metrics, labels and label values', () => {
    expect(dashboardExprs.length).toBeGreaterThan(20);
    const problems = dashboardExprs.flatMap(({ panel, expr }) => queryProblems(expr).map((p) => `${panel}: ${p}`));
    expect(problems).toEqual([]);
  });

  it('covers every SPEC metric and the Node process metrics', () => {
    const used = new Set(dashboardExprs.flatMap(({ expr }) => queryParts(expr).selectors.map((s) => s.metric)));
    for (const [name, { type }] of Object.entries(SPEC_METRICS)) {
      const forms = type === 'histogram' ? [`${name}_bucket`, `${name}_count`] : [name];
      expect(forms.some((form) => used.has(form)), name).toBe(true);
    }
    for (const name of ['cardproxy_process_cpu_seconds_total', 'cardproxy_process_resident_memory_bytes', 'cardproxy_nodejs_heap_size_used_bytes', 'cardproxy_nodejs_eventloop_lag_seconds']) {
      expect(used.has(name), name).toBe(true);
    }
    // Every process reports the same shared queue: the queue gauge must be aggregated with max.
    for (const { expr } of dashboardExprs.filter(({ expr }) => expr.includes('cardproxy_refresh_jobs'))) {
      expect(expr).toMatch(/max by \(/);
    }
  });

  it('follows the configured budget: draws cardproxy_budget_seconds and hard-codes no bucket or budget', () => {
    const budgetLines = allPanels.filter(
      (panel) =>
        panel.targets?.some((t) => t.expr === 'max(cardproxy_budget_seconds)') &&
        panel.targets?.some((t) => t.expr?.includes('cardproxy_http_request_duration_seconds_bucket')),
    );
    expect(budgetLines.map((p) => p.title)).toEqual(['/cards latency vs the budget']);
    for (const { expr } of dashboardExprs) expect(expr).not.toMatch(/le="/);
    for (const panel of allPanels) expect(`${panel.title ?? ''} ${(panel as { description?: string }).description ?? ''}`).not.toMatch(/\b2 s\b|budgetMs = /);
  });
});

describe('the metric allow-list', () => {
  it('names metrics the app registers, with the labels of SPEC section 8', async () => {
    const metrics = new Metrics({ budgetMs: composeConfig.budgetMs });
    const registered = new Map((await metrics.registry.getMetricsAsJSON()).map((m) => [m.name, m]));
    for (const [name, { type, labels }] of Object.entries(SPEC_METRICS)) {
      expect(registered.get(name)?.type, name).toBe(type);
      const metric = metrics.registry.getSingleMetric(name) as unknown as { labelNames: string[] };
      expect([...metric.labelNames].sort(), name).toEqual(Object.keys(labels).sort());
    }
    for (const name of NODE_DEFAULT_METRICS) expect(registered.has(name), name).toBe(true);
    for (const [name, { type }] of Object.entries(MORE_METRICS)) expect(registered.get(name)?.type, name).toBe(type);
    expect((await metrics.budget.get()).values[0]?.value).toBe(composeConfig.budgetMs / 1000);
    metrics.registry.clear();
  });

  it('is enforced by queryProblems', () => {
    expect(queryProblems('sum(rate(cardproxy_cards_served_total{source="placeholder"}[5m]))')).toEqual([]);
    expect(queryProblems('rate(cardproxy_cards_served_total{source="placeholders"}[5m])')).toHaveLength(1);
    expect(queryProblems('rate(cardproxy_card_served_total[5m])')).toHaveLength(1);
    expect(queryProblems('sum by (status) (rate(cardproxy_http_request_duration_seconds_count[5m]))')).toHaveLength(1);
    expect(queryProblems('rate(cardproxy_budget_exhausted_total{upstream="x"}[5m])')).toHaveLength(1);
    expect(queryProblems('histogram_quantile(0.99, sum by (le) (rate(cardproxy_upstream_request_duration_seconds_bucket{upstream=~"$upstream"}[$__rate_interval])))')).toEqual([]);
  });
});

const promtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!promtool)('promtool (when installed)', () => {
  it('accepts the Prometheus configuration and the alert rules', () => {
    const config = spawnSync('promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml'], { cwd: ROOT, encoding: 'utf8' });
    expect(config.status, config.stdout + config.stderr).toBe(0);
    for (const file of asStrings(prometheus.rule_files, 'rule_files')) {
      const rules = spawnSync('promtool', ['check', 'rules', posix.join('deploy/prometheus', file)], { cwd: ROOT, encoding: 'utf8' });
      expect(rules.status, rules.stdout + rules.stderr).toBe(0);
    }
  });

  it('parses every dashboard query', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cardproxy-dashboard-'));
    try {
      // As recording rules, in JSON (which is YAML), so that promtool parses each expression.
      const rules = dashboardExprs.map(({ expr }, index) => ({ record: `dashboard:query_${index}`, expr: expandGrafanaVariables(expr) }));
      const file = join(dir, 'dashboard-queries.yml');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const result = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      expect(result.status, result.stdout + result.stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
