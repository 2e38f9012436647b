import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  configWarnings,
  loadConfigFile,
  parseConfig,
  substituteEnv,
} from '../../src/config/load.js';
import { resolveCardPolicies } from '../../src/config/card-policy.js';
import { ConfigSchema, DEFAULT_WEBHOOK_EVENTS, type Config } from '../../src/config/schema.js';
import { configSecrets } from '../../src/config/secrets.js';

/** Tests never read the real environment (the test setup sets REDIS_URL, for one). */
const NO_ENV = {};

function minimal(): Record<string, any> {
  return {
    upstreams: { billing: { url: 'https://billing.internal/plain-cards' } },
    cards: { 'subscription-details': { upstream: 'billing' } },
  };
}

function issuesOf(raw: unknown, env: Record<string, string | undefined> = NO_ENV): string[] {
  try {
    parseConfig(raw, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

function pathsOf(issues: string[]): string[] {
  return issues.map((issue) => issue.slice(0, issue.indexOf(': '))).sort();
}

describe('parseConfig: defaults', () => {
  it('fills in every default of SPEC section 4 for a minimal config', () => {
    const config = parseConfig(minimal(), NO_ENV);
    expect(config).toEqual({
      listen: { host: '0.0.0.0', port: 8080, tls: null, opsPort: null, acceptors: 16 },
      redis: { url: 'redis://127.0.0.1:6379', keyPrefix: 'cardproxy', clusterNodes: [] },
      plain: { signingSecrets: [], api: null },
      admin: { token: null },
      budgetMs: 10000,
      defaults: {
        ttlSeconds: 300,
        staleSeconds: 86400,
        placeholderTtlSeconds: 15,
        staleServeTtlSeconds: 15,
        integrationErrorTtlSeconds: 300,
        scope: 'customer',
        refreshAhead: 0.2,
      },
      events: { retentionSeconds: 604800, shards: 1 },
      worker: { lockDurationMs: 10000, stalledIntervalMs: 5000, concurrencyCheckIntervalMs: 5000 },
      warming: { webhookToleranceSeconds: 300, webhookEvents: [...DEFAULT_WEBHOOK_EVENTS], maxQueued: 10000 },
      refresh: { maxQueued: 10000 },
      nearCache: { maxBytes: 67108864 },
      upstreams: {
        billing: {
          url: 'https://billing.internal/plain-cards',
          headers: {},
          timeoutMs: 30000,
          concurrency: 4,
          retries: 1,
          retryDelayMs: 1000,
          signingSecret: null,
        },
      },
      cards: { 'subscription-details': { upstream: 'billing' } },
    } satisfies Config);
  });

  it('fills in defaults inside partially given sections', () => {
    const config = parseConfig(
      { ...minimal(), listen: { port: 9000 }, defaults: { ttlSeconds: 60 }, worker: { lockDurationMs: 2000 } },
      NO_ENV,
    );
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 9000, tls: null, opsPort: null, acceptors: 16 });
    expect(config.defaults.ttlSeconds).toBe(60);
    expect(config.defaults.staleSeconds).toBe(86400);
    expect(config.worker).toEqual({ lockDurationMs: 2000, stalledIntervalMs: 5000, concurrencyCheckIntervalMs: 5000 });
  });

  it('accepts the example of SPEC section 4', () => {
    const config = parseConfig(
      {
        listen: { host: '0.0.0.0', port: 8080 },
        redis: { url: 'redis://127.0.0.1:6379', keyPrefix: 'cardproxy' },
        plain: { signingSecrets: [] },
        admin: { token: null },
        budgetMs: 10000,
        defaults: {
          ttlSeconds: 300,
          staleSeconds: 86400,
          placeholderTtlSeconds: 15,
          staleServeTtlSeconds: 15,
          integrationErrorTtlSeconds: 300,
          scope: 'customer',
        },
        events: { retentionSeconds: 604800 },
        upstreams: {
          billing: {
            url: 'https://billing.internal/plain-cards',
            headers: { Authorization: 'Bearer ${BILLING_TOKEN}' },
            timeoutMs: 30000,
            concurrency: 4,
            signingSecret: null,
          },
        },
        cards: {
          'subscription-details': {
            upstream: 'billing',
            ttlSeconds: 600,
            placeholder: [{ componentText: { text: 'Loading subscription…', textColor: 'MUTED' } }],
          },
        },
      },
      { BILLING_TOKEN: 't0ken' },
    );
    expect(config.cards['subscription-details']!.ttlSeconds).toBe(600);
    expect(config.upstreams.billing!.headers).toEqual({ Authorization: 'Bearer t0ken' });
  });

  it('trims header names and keeps values as they are', () => {
    const raw = minimal();
    raw.upstreams.billing.headers = { '  Authorization ': ' Bearer x ', 'X-Api-Key': 'k' };
    const config = parseConfig(raw, NO_ENV);
    expect(config.upstreams.billing!.headers).toEqual({ Authorization: ' Bearer x ', 'X-Api-Key': 'k' });
  });

  it('returns a deep-frozen object', () => {
    const raw = minimal();
    raw.cards['subscription-details'].placeholder = [{ componentText: { text: 'Loading…' } }];
    const config = parseConfig(raw, NO_ENV);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listen)).toBe(true);
    expect(Object.isFrozen(config.upstreams.billing)).toBe(true);
    expect(Object.isFrozen(config.upstreams.billing!.headers)).toBe(true);
    expect(Object.isFrozen(config.cards['subscription-details']!.placeholder)).toBe(true);
    expect(Object.isFrozen(config.cards['subscription-details']!.placeholder![0])).toBe(true);
    expect(() => {
      (config as any).budgetMs = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.listen as any).port = 1;
    }).toThrow(TypeError);
  });

  it('does not modify its input', () => {
    const raw = minimal();
    const copy = structuredClone(raw);
    parseConfig(raw, { REDIS_URL: 'redis://other:6379', PORT: '1234' });
    expect(raw).toEqual(copy);
  });
});

describe('parseConfig: errors', () => {
  it('names every bad field by its path when several are wrong at once', () => {
    const raw = {
      listen: { host: '', port: 'eighty', hots: 'x' },
      redis: { url: 'http://redis', keyPrefix: 'has space' },
      plain: { signingSecrets: ['ok', ''] },
      admin: { token: 5 },
      budgetMs: 20000,
      defaults: { ttlSeconds: 0, staleSeconds: -1, scope: 'tenant' },
      events: { retentionSeconds: 59 },
      worker: { lockDurationMs: 999 },
      upstreams: {
        billing: { url: 'ftp://billing', concurrency: 0, retries: 11, timeoutMs: 99, retryDelayMs: 1.5 },
        'bad name!': { url: 'https://x' },
      },
      cards: {
        'subscription-details': { upstream: 'billing', ttlSeconds: 1.5, colour: 'red' },
        invoices: { upstream: 'crm' },
        'bad key!': { upstream: 'billing' },
      },
      extra: true,
    };
    const issues = issuesOf(raw);
    expect(pathsOf(issues)).toEqual(
      [
        'admin.token',
        'budgetMs',
        'cards["bad key!"]',
        'cards["subscription-details"].colour',
        'cards["subscription-details"].ttlSeconds',
        'cards.invoices.upstream',
        'defaults.scope',
        'defaults.staleSeconds',
        'defaults.ttlSeconds',
        'events.retentionSeconds',
        'extra',
        'listen.host',
        'listen.hots',
        'listen.port',
        'plain.signingSecrets[1]',
        'redis.keyPrefix',
        'redis.url',
        'upstreams.billing.concurrency',
        'upstreams.billing.retries',
        'upstreams.billing.retryDelayMs',
        'upstreams.billing.timeoutMs',
        'upstreams.billing.url',
        'upstreams["bad name!"]',
        'worker.lockDurationMs',
      ].sort(),
    );
  });

  it('puts every issue on its own line of the message', () => {
    try {
      parseConfig({ ...minimal(), budgetMs: 99, listen: { port: -1 } }, NO_ENV);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const configError = error as ConfigError;
      expect(configError.name).toBe('ConfigError');
      expect(configError.issues).toHaveLength(2);
      for (const issue of configError.issues) expect(configError.message.split('\n')).toContainEqual(expect.stringContaining(issue));
    }
  });

  it('refuses credentials in an upstream URL, which fetch cannot send and logs would show', () => {
    const raw = minimal();
    raw.upstreams.billing.url = 'https://user:s3cret@billing.internal/cards';
    const issues = issuesOf(raw);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^upstreams\.billing\.url: must not contain credentials/);
    expect(issues[0]).not.toContain('s3cret');
  });

  it('requires upstreams and cards, with at least one of each', () => {
    expect(pathsOf(issuesOf({}))).toEqual(['cards', 'upstreams']);
    expect(issuesOf({ upstreams: {}, cards: {} })).toEqual([
      'upstreams: at least one upstream must be configured',
      'cards: at least one card must be configured',
    ]);
  });

  it('rejects a non-object config', () => {
    expect(issuesOf([])).toHaveLength(1);
    expect(issuesOf(null)).toHaveLength(1);
    expect(issuesOf('config')).toHaveLength(1);
  });

  it.each([
    [99, false],
    [100, true],
    [14000, true],
    [14001, false],
    [500.5, false],
  ])('budgetMs %s is valid: %s', (budgetMs, valid) => {
    const raw = { ...minimal(), budgetMs };
    if (valid) expect(parseConfig(raw, NO_ENV).budgetMs).toBe(budgetMs);
    else expect(pathsOf(issuesOf(raw))).toEqual(['budgetMs']);
  });

  it('names a card that references an unknown upstream', () => {
    const raw = minimal();
    raw.cards.usage = { upstream: 'metering' };
    expect(issuesOf(raw)).toEqual(['cards.usage.upstream: unknown upstream "metering" (configured: billing)']);
  });

  it('reports an unknown upstream reference even when other fields are wrong too', () => {
    const raw = minimal();
    raw.cards.usage = { upstream: 'metering' };
    raw.upstreams.billing.timeoutMs = 'slow';
    expect(pathsOf(issuesOf(raw))).toEqual(['cards.usage.upstream', 'upstreams.billing.timeoutMs']);
  });

  it('rejects header names that are the same after trimming, case-insensitively', () => {
    const raw = minimal();
    raw.upstreams.billing.headers = { Authorization: 'a', ' authorization ': 'b' };
    const issues = issuesOf(raw);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^upstreams\.billing\.headers\[" authorization "\]: duplicate header name/);
  });

  it('rejects a header name that is empty after trimming or not a header name', () => {
    const raw = minimal();
    raw.upstreams.billing.headers = { '  ': 'a', 'X Bad': 'b', 'X-Value': 'line\nbreak' };
    expect(pathsOf(issuesOf(raw))).toEqual([
      'upstreams.billing.headers["  "]',
      'upstreams.billing.headers["X Bad"]',
      'upstreams.billing.headers["X-Value"]',
    ]);
  });

  it('rejects an invalid placeholder component with its path', () => {
    const raw = minimal();
    raw.cards['subscription-details'].placeholder = [
      { componentText: { text: 'ok' } },
      { componentText: { text: 'bad colour', textColor: 'PURPLE' } },
    ];
    raw.cards['subscription-details'].errorComponents = [{ componentBadge: {} }];
    expect(pathsOf(issuesOf(raw))).toEqual([
      'cards["subscription-details"].errorComponents[0].componentBadge.badgeLabel',
      'cards["subscription-details"].placeholder[1].componentText.textColor',
    ]);
  });

  it('rejects a card key that Plain would not accept', () => {
    const raw = minimal();
    raw.cards['x'.repeat(501)] = { upstream: 'billing' };
    raw.cards['y'.repeat(500)] = { upstream: 'billing' };
    expect(pathsOf(issuesOf(raw))).toEqual([`cards.${'x'.repeat(501)}`]);
  });

  it('accepts only http and https upstream URLs', () => {
    for (const url of ['https://a.example/cards', 'http://127.0.0.1:8090/cards', ' https://trimmed.example/x ']) {
      const raw = minimal();
      raw.upstreams.billing.url = url;
      expect(parseConfig(raw, NO_ENV).upstreams.billing!.url).toBe(url.trim());
    }
    for (const url of ['ftp://a.example', 'not a url', '', 'mailto:a@b.c']) {
      const raw = minimal();
      raw.upstreams.billing.url = url;
      expect(pathsOf(issuesOf(raw))).toEqual(['upstreams.billing.url']);
    }
  });

  it('validates keyPrefix characters and length', () => {
    for (const keyPrefix of ['a', 'cp.prod_1-x', 'k'.repeat(64)]) {
      expect(parseConfig({ ...minimal(), redis: { keyPrefix } }, NO_ENV).redis.keyPrefix).toBe(keyPrefix);
    }
    for (const keyPrefix of ['', 'k'.repeat(65), 'a:b', 'a b']) {
      expect(pathsOf(issuesOf({ ...minimal(), redis: { keyPrefix } }))).toEqual(['redis.keyPrefix']);
    }
  });

  it('lets a card override every field of defaults', () => {
    const raw = minimal();
    raw.cards['subscription-details'] = {
      upstream: 'billing',
      ttlSeconds: 1,
      staleSeconds: 0,
      placeholderTtlSeconds: 2,
      staleServeTtlSeconds: 3,
      integrationErrorTtlSeconds: 4,
      scope: 'thread',
    };
    const policy = resolveCardPolicies(parseConfig(raw, NO_ENV)).get('subscription-details');
    expect(policy).toMatchObject({
      ttlSeconds: 1,
      staleSeconds: 0,
      placeholderTtlSeconds: 2,
      staleServeTtlSeconds: 3,
      integrationErrorTtlSeconds: 4,
      scope: 'thread',
    });
  });
});

describe('environment', () => {
  it('substitutes ${NAME} references anywhere in string values, and leaves other strings alone', () => {
    const raw = minimal();
    raw.upstreams.billing.headers = { Authorization: '${BILLING_AUTH}', 'X-Embedded': 'Bearer ${PLAIN_SECRET_A}', 'X-Literal': '$ADMIN_TOKEN' };
    raw.upstreams.billing.signingSecret = '${UPSTREAM_SECRET}';
    raw.plain = { signingSecrets: ['${PLAIN_SECRET_A}', 'literal'] };
    raw.admin = { token: '${ADMIN_TOKEN}' };
    const config = parseConfig(raw, {
      BILLING_AUTH: 'Bearer t0ken',
      UPSTREAM_SECRET: 'up-secret',
      PLAIN_SECRET_A: 'plain-secret',
      ADMIN_TOKEN: 'admin',
    });
    expect(config.upstreams.billing!.headers).toEqual({ Authorization: 'Bearer t0ken', 'X-Embedded': 'Bearer plain-secret', 'X-Literal': '$ADMIN_TOKEN' });
    expect(config.upstreams.billing!.signingSecret).toBe('up-secret');
    expect(config.plain.signingSecrets).toEqual(['plain-secret', 'literal']);
    expect(config.admin.token).toBe('admin');
  });

  it('names every reference to a variable that is not set, by path', () => {
    const raw = minimal();
    raw.upstreams.billing.url = '${BILLING_URL}';
    raw.plain = { signingSecrets: ['${SECRET_ONE}', '${SECRET_TWO}'] };
    raw.budgetMs = 5;
    const issues = issuesOf(raw, { SECRET_TWO: 'set' });
    expect(issues).toEqual([
      'upstreams.billing.url: environment variable BILLING_URL is not set',
      'plain.signingSecrets[0]: environment variable SECRET_ONE is not set',
      expect.stringMatching(/^budgetMs: /),
    ]);
  });

  it('substituteEnv returns a substituted copy or throws naming every missing variable', () => {
    const raw = { a: ['${A}', { b: '${B}' }], c: 1, d: '$A', e: '${A}x' };
    expect(substituteEnv(raw, { A: 'x', B: 'y' })).toEqual({ a: ['x', { b: 'y' }], c: 1, d: '$A', e: 'xx' });
    expect(raw.a[0]).toBe('${A}');
    expect(() => substituteEnv(raw, {})).toThrow(ConfigError);
    try {
      substituteEnv(raw, {});
    } catch (error) {
      expect((error as ConfigError).issues).toEqual([
        'a[0]: environment variable A is not set',
        'a[1].b: environment variable B is not set',
        'e: environment variable A is not set',
      ]);
    }
  });

  it('an empty variable is set (and then validated like any value)', () => {
    const raw = { ...minimal(), admin: { token: '${ADMIN_TOKEN}' } };
    expect(pathsOf(issuesOf(raw, { ADMIN_TOKEN: '' }))).toEqual(['admin.token']);
  });

  it('REDIS_URL overrides redis.url and PORT overrides listen.port', () => {
    const raw = { ...minimal(), redis: { url: 'redis://configured:6379', keyPrefix: 'p' }, listen: { host: '127.0.0.1', port: 8080 } };
    const config = parseConfig(raw, { REDIS_URL: 'redis://from-env:6380/2', PORT: '9123' });
    expect(config.redis).toEqual({ url: 'redis://from-env:6380/2', keyPrefix: 'p', clusterNodes: [] });
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9123, tls: null, opsPort: null, acceptors: 16 });

    const bare = parseConfig(minimal(), { REDIS_URL: 'rediss://tls:6379', PORT: '0' });
    expect(bare.redis.url).toBe('rediss://tls:6379');
    expect(bare.listen.port).toBe(0);

    const untouched = parseConfig(raw, {});
    expect(untouched.redis.url).toBe('redis://configured:6379');
    expect(untouched.listen.port).toBe(8080);
  });

  it('an unset ${NAME} in redis.url or listen.port does not matter when REDIS_URL or PORT replaces it', () => {
    const raw = { ...minimal(), redis: { url: '${MY_REDIS}' }, listen: { port: '${MY_PORT}' } };
    const config = parseConfig(raw, { REDIS_URL: 'redis://x:1', PORT: '81' });
    expect(config.redis.url).toBe('redis://x:1');
    expect(config.listen.port).toBe(81);
    expect(pathsOf(issuesOf(raw, {}))).toEqual(['listen.port', 'redis.url']);
  });

  it('REDIS_CLUSTER_NODES (comma-separated) overrides redis.clusterNodes; cluster mode shards the log 16 ways by default', () => {
    const raw = { ...minimal(), redis: { clusterNodes: ['redis://configured:7000'] } };
    const config = parseConfig(raw, { REDIS_CLUSTER_NODES: ' redis://a:7000, redis://b:7001,,' });
    expect(config.redis.clusterNodes).toEqual(['redis://a:7000', 'redis://b:7001']);
    expect(config.events.shards).toBe(16);
    expect(parseConfig(raw, { REDIS_CLUSTER_NODES: '' }).redis.clusterNodes).toEqual(['redis://configured:7000']);
    expect(parseConfig({ ...raw, events: { shards: 4 } }, NO_ENV).events.shards).toBe(4);
    expect(parseConfig(minimal(), { REDIS_CLUSTER_NODES: 'redis://a:7000' }).events.shards).toBe(16);
    expect(parseConfig({ ...minimal(), events: { shards: 3 } }, NO_ENV).events.shards).toBe(3);
  });

  it('on a cluster, an unset ${NAME} in the unused redis.url does not matter', () => {
    const raw = { ...minimal(), redis: { url: '${REDIS_URL}' } };
    expect(parseConfig(raw, { REDIS_CLUSTER_NODES: 'redis://a:7000' }).redis.clusterNodes).toEqual(['redis://a:7000']);
    expect(parseConfig({ ...raw, redis: { url: '${REDIS_URL}', clusterNodes: ['redis://a:7000'] } }, NO_ENV).redis.clusterNodes).toEqual(['redis://a:7000']);
    expect(pathsOf(issuesOf(raw, {}))).toEqual(['redis.url']);
  });

  it('names bad cluster nodes and shard counts', () => {
    expect(pathsOf(issuesOf(minimal(), { REDIS_CLUSTER_NODES: 'redis://a:7000,a:7001' }))).toEqual(['redis.clusterNodes[1]']);
    expect(issuesOf({ ...minimal(), redis: { clusterNodes: ['redis://:x@a:7000', 'redis://:y@b:7000'] } }, NO_ENV)).toEqual([
      'redis.clusterNodes: all seed nodes must use the same scheme (redis:// or rediss://) and the same user and password',
    ]);
    expect(pathsOf(issuesOf({ ...minimal(), redis: { clusterNodes: ['redis://a:7000', 'rediss://b:7000'] } }, NO_ENV))).toEqual(['redis.clusterNodes']);
    expect(pathsOf(issuesOf({ ...minimal(), events: { shards: 0 } }, NO_ENV))).toEqual(['events.shards']);
    expect(pathsOf(issuesOf({ ...minimal(), events: { shards: 1025 } }, NO_ENV))).toEqual(['events.shards']);
  });

  it('names a bad PORT or REDIS_URL', () => {
    expect(issuesOf(minimal(), { PORT: 'http' })).toEqual([expect.stringMatching(/^listen\.port: the PORT environment variable/)]);
    expect(pathsOf(issuesOf(minimal(), { PORT: '70000' }))).toEqual(['listen.port']);
    expect(pathsOf(issuesOf(minimal(), { REDIS_URL: 'localhost:6379' }))).toEqual(['redis.url']);
  });
});

describe('configWarnings', () => {
  it('warns when a Redis Cluster gets one event shard (everything on one master)', () => {
    const warnings = (events: Record<string, unknown>) =>
      configWarnings(parseConfig({ ...minimal(), plain: { signingSecrets: ['s'] }, redis: { clusterNodes: ['redis://a:7000'] }, events }, NO_ENV));
    expect(warnings({ shards: 1 })).toEqual(['events.shards is 1 on a Redis Cluster: every card and the whole event log live in one slot, on one master']);
    expect(warnings({})).toEqual([]);
  });

  it('warns when no signing secret is configured', () => {
    expect(configWarnings(parseConfig(minimal(), NO_ENV))).toEqual([
      'no plain.signingSecrets configured: requests to /cards are not authenticated',
    ]);
    expect(configWarnings(parseConfig({ ...minimal(), plain: { signingSecrets: ['s'] } }, NO_ENV))).toEqual([]);
  });

  it('warns when the event retention is shorter than the longest ttl + stale window, naming the card', () => {
    const raw = {
      ...minimal(),
      plain: { signingSecrets: ['s'] },
      events: { retentionSeconds: 3600 },
      defaults: { ttlSeconds: 60, staleSeconds: 600 },
      cards: {
        short: { upstream: 'billing' },
        long: { upstream: 'billing', ttlSeconds: 1200, staleSeconds: 3000 },
      },
    };
    const warnings = configWarnings(parseConfig(raw, NO_ENV));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('events.retentionSeconds (3600)');
    expect(warnings[0]).toContain('"long"');
    expect(warnings[0]).toContain('1200 + 3000 = 4200');

    raw.events.retentionSeconds = 4200;
    expect(configWarnings(parseConfig(raw, NO_ENV))).toEqual([]);
  });
});

describe('resolveCardPolicies', () => {
  it('merges defaults with overrides and supplies built-in placeholder and error components', () => {
    const raw = minimal();
    raw.defaults = { ttlSeconds: 100, scope: 'thread' };
    raw.cards.usage = {
      upstream: 'billing',
      staleSeconds: 5,
      refreshAhead: 0,
      warm: false,
      placeholder: [{ componentText: { text: 'Loading usage…', textColor: 'MUTED' } }],
    };
    const policies = resolveCardPolicies(parseConfig(raw, NO_ENV));
    expect([...policies.keys()]).toEqual(['subscription-details', 'usage']);
    expect(policies.get('subscription-details')).toEqual({
      key: 'subscription-details',
      upstream: 'billing',
      ttlSeconds: 100,
      staleSeconds: 86400,
      placeholderTtlSeconds: 15,
      staleServeTtlSeconds: 15,
      integrationErrorTtlSeconds: 300,
      scope: 'thread',
      refreshAhead: 0.2,
      warm: true,
      placeholder: [{ componentText: { text: 'Loading…', textColor: 'MUTED' } }],
      errorComponents: [
        { componentText: { text: 'This card could not be loaded right now. Try reloading it in a minute.', textColor: 'ERROR' } },
      ],
    });
    const usage = policies.get('usage')!;
    expect(usage.staleSeconds).toBe(5);
    expect(usage.ttlSeconds).toBe(100);
    expect([usage.refreshAhead, usage.warm]).toEqual([0, false]);
    expect(usage.placeholder).toEqual([{ componentText: { text: 'Loading usage…', textColor: 'MUTED' } }]);
    expect(Object.isFrozen(usage)).toBe(true);
    expect(Object.isFrozen(usage.errorComponents)).toBe(true);
    expect(() => (policies as Map<string, unknown>).set('x', {})).toThrow(TypeError);
    expect(() => (policies as Map<string, unknown>).delete('usage')).toThrow(TypeError);
    expect(policies.size).toBe(2);
  });
});

describe('loadConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cardproxy-config-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and validates a JSON file', () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify({ ...minimal(), admin: { token: '${TOKEN}' } }));
    const config = loadConfigFile(file, { TOKEN: 't', PORT: '7000' });
    expect(config.admin.token).toBe('t');
    expect(config.listen.port).toBe(7000);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('names the file when it is missing', () => {
    const file = join(dir, 'missing.json');
    expect(() => loadConfigFile(file, NO_ENV)).toThrow(ConfigError);
    expect(() => loadConfigFile(file, NO_ENV)).toThrow(`cannot read config file ${file}: file not found`);
  });

  it('reports broken JSON with the parser message', () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ "upstreams": { ');
    try {
      loadConfigFile(file, NO_ENV);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const issues = (error as ConfigError).issues;
      expect(issues).toHaveLength(1);
      expect(issues[0]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid JSON: .+`));
    }
  });

  it('names every bad field of a file', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ ...minimal(), budgetMs: 14001, listen: { port: 'x' } }));
    try {
      loadConfigFile(file, NO_ENV);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect(pathsOf((error as ConfigError).issues)).toEqual(['budgetMs', 'listen.port']);
      expect((error as ConfigError).message).toContain(file);
    }
  });

  it('config/default.json is valid, without any environment', () => {
    const file = fileURLToPath(new URL('../../config/default.json', import.meta.url));
    const config = loadConfigFile(file, NO_ENV);
    expect(Object.keys(config.upstreams)).toEqual(['demo']);
    expect(config.upstreams.demo!.url).toBe('http://127.0.0.1:8090/cards');
    expect(Object.keys(config.cards).sort()).toEqual(['latest-invoices', 'subscription-details', 'usage']);
    expect(config.admin.token).toBeNull();
    expect(config.plain.signingSecrets).toEqual([]);
    // The file is exactly what the schema accepts, with nothing left to default but `worker`.
    expect(ConfigSchema.safeParse(config).success).toBe(true);
  });
});

describe('listen.tls and listen.opsPort', () => {
  it('defaults clientCertificate to off and needs clientCaFiles for request and require', () => {
    const tls = { certFile: 'server.pem', keyFile: 'server.key' };
    expect(parseConfig({ ...minimal(), listen: { tls, opsPort: 9090 } }, NO_ENV).listen).toEqual({
      host: '0.0.0.0',
      port: 8080,
      opsPort: 9090,
      acceptors: 16,
      tls: { ...tls, clientCertificate: 'off', clientCaFiles: [] },
    });
    for (const clientCertificate of ['request', 'require']) {
      expect(() => parseConfig({ ...minimal(), listen: { tls: { ...tls, clientCertificate } } }, NO_ENV)).toThrow(
        `listen.tls.clientCaFiles: clientCertificate "${clientCertificate}" needs at least one CA file (Plain's: config/plain-mtls-ca.pem)`,
      );
    }
    expect(() => parseConfig({ ...minimal(), listen: { port: 8080, opsPort: 8080 } }, NO_ENV)).toThrow('listen.opsPort: must differ from listen.port');
  });
});

describe('plain.api (SPEC 11)', () => {
  it('is off by default and when null; fills url, pushReload and maxRequestsPerMinute', () => {
    expect(parseConfig(minimal(), NO_ENV).plain.api).toBeNull();
    expect(parseConfig({ ...minimal(), plain: { api: null } }, NO_ENV).plain.api).toBeNull();
    const config = parseConfig({ ...minimal(), plain: { api: { apiKey: '${PLAIN_API_KEY}' } } }, { PLAIN_API_KEY: 'plainApiKey_x' });
    expect(config.plain.api).toEqual({
      url: 'https://core-api.uk.plain.com/graphql/v1',
      apiKey: 'plainApiKey_x',
      pushReload: true,
      maxRequestsPerMinute: 300,
    });
  });

  it('names each bad field', () => {
    const raw = { ...minimal(), plain: { api: { url: 'ftp://plain', apiKey: '', pushReload: 'yes', maxRequestsPerMinute: 0, extra: 1 } } };
    expect(pathsOf(issuesOf(raw))).toEqual(
      ['plain.api.apiKey', 'plain.api.extra', 'plain.api.maxRequestsPerMinute', 'plain.api.pushReload', 'plain.api.url'].sort(),
    );
    expect(pathsOf(issuesOf({ ...minimal(), plain: { api: {} } }))).toEqual(['plain.api.apiKey']);
  });

  it('is one of the secrets the logger scrubs from every line', () => {
    const config = parseConfig({ ...minimal(), plain: { api: { apiKey: 'plainApiKey_s3cret' } } }, NO_ENV);
    expect(configSecrets(config)).toContain('plainApiKey_s3cret');
    const cluster = parseConfig({ ...minimal(), redis: { clusterNodes: ['redis://:cluster%40pw@a:7000'] } }, NO_ENV);
    expect(configSecrets(cluster)).toContain('cluster@pw');
  });
});
