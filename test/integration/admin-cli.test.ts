/**
 * The operator's CLI commands as operators run them: `node dist/cli.js ttl|invalidate|events`
 * in a process of their own, talking to the same Redis as an in-process server, with the config
 * from `--config` or CARDPROXY_CONFIG, JSON or table output, and exit codes 0/1/2.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { cardsReply, startFakeUpstream, textOf, type FakeUpstream } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, postCards, redisModes, startTestProxy, testConfig, type RedisMode } from '../helpers/harness.js';
import { admin } from '../helpers/admin-client.js';
import { runCli, type CliResult } from '../helpers/run-cli.js';


let dir: string;
let upstreams: FakeUpstream[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardproxy-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await cleanupProxies();
  await Promise.all(upstreams.map((u) => u.close()));
  upstreams = [];
});

function configFile(config: Config): string {
  const file = join(dir, `${config.redis.keyPrefix}.json`);
  writeFileSync(file, JSON.stringify(config));
  return file;
}

const cli = runCli;

/**
 * Runs several commands, two at a time: faster than one by one, without starving timing-sensitive
 * tests that run alongside on a small machine.
 */
async function cliAll(runs: Array<[string[], Record<string, string>?]>): Promise<CliResult[]> {
  const results: CliResult[] = [];
  for (let i = 0; i < runs.length; i += 2) {
    results.push(...(await Promise.all(runs.slice(i, i + 2).map(([args, env]) => cli(args, env)))));
  }
  return results;
}

const json = (result: CliResult) => {
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as any;
};

async function setup(mode: RedisMode = 'single') {
  let version = 1;
  const legacy = await startFakeUpstream((call) => ({ body: cardsReply(call, { text: (key) => `${key} v${version}` }) }));
  upstreams.push(legacy);
  const config = testConfig(legacy.url, { admin: { token: 'cli-test-token' }, budgetMs: 3000 }, mode);
  const proxy = await startTestProxy(config);
  return { legacy, config, proxy, file: configFile(config), bump: () => (version += 1) };
}

describe('ttl', () => {
  it.each(redisModes())('sets, lists and clears overrides, which a running server sees at once (%s Redis)', async (mode) => {
    const { proxy, file } = await setup(mode);
    const set = await cli(['ttl', 'set', 'alpha', '42', '--config', file]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/^KEY\s+UPSTREAM\s+SCOPE\s+TTL\s+STALE\s+OVERRIDE\nalpha\s+legacy\s+customer\s+300\s+86400\s+42\n$/);
    // Another process (this test's server) sees it: in its admin API and in the TTL of new loads.
    expect((await admin(proxy, 'GET', '/admin/cards')).body.cards[0].overrideTtlSeconds).toBe(42);
    const loaded = (await postCards(proxy, cardsBody(['alpha', 'beta']))).body.cards;
    expect(loaded.find((c: any) => c.key === 'alpha').timeToLiveSeconds).toBe(34); // 42 less the 8.4 s refresh-ahead lead, rounded up

    const list = json(await cli(['ttl', 'list', '--json'], { CARDPROXY_CONFIG: file }));
    expect(list.cards.map((c: any) => [c.key, c.overrideTtlSeconds])).toEqual([
      ['alpha', 42],
      ['beta', null],
    ]);
    expect(json(await cli(['ttl', 'clear', 'alpha', '--config', file, '--json']))).toMatchObject({ key: 'alpha', overrideTtlSeconds: null });
    expect((await admin(proxy, 'GET', '/admin/cards')).body.cards[0].overrideTtlSeconds).toBeNull();
  });

  it('exits 2 for bad input, without touching Redis', async () => {
    const { proxy, file } = await setup();
    const cases = [
      ['ttl', 'set', 'nope', '5'],
      ['ttl', 'set', 'alpha', '0'],
      ['ttl', 'set', 'alpha', 'soon'],
      ['ttl', 'set', 'alpha'],
      ['ttl', 'unset', 'alpha'],
      ['ttl'],
    ];
    const results = await cliAll(cases.map((args) => [[...args, '--config', file]]));
    results.forEach((result, i) => {
      expect(result.code, cases[i]!.join(' ')).toBe(2);
      expect(result.stderr).not.toBe('');
    });
    expect(results[0]!.stderr).toContain('unknown card key "nope"');
    expect((await admin(proxy, 'GET', '/admin/events')).body.events).toEqual([]);
  });
});

describe('invalidate', () => {
  it.each(redisModes())('marks a customer’s cards stale by email, and with --refresh queues their refresh (%s Redis)', async (mode) => {
    const { legacy, proxy, file, bump } = await setup(mode);
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_1'));
    bump();

    const text = await cli(['invalidate', '--email', 'C_1@example.COM', '--card-key', 'alpha', '--config', file]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toBe('invalidated 1 cached card\n');
    expect(json(await cli(['invalidate', '--customer-id', 'c_1', '--workspace-id', 'w_other', '--json', '--config', file]))).toEqual({
      invalidated: 0,
      refreshing: 0,
    });

    const refreshed = json(await cli(['invalidate', '--customer-id', 'c_1', '--refresh', '--json', '--config', file]));
    expect(refreshed).toEqual({ invalidated: 2, refreshing: 2 });
    await legacy.waitForCalls(2);
    await eventually(async () => {
      const cards = (await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_1'))).body.cards;
      return cards.every((c: any) => textOf(c) === `${c.key} v2`);
    }, 5000, 'refreshed cards');
  });

  it('exits 2 unless exactly one customer identifier is given', async () => {
    const { file } = await setup();
    const [none, two, badKey, badFlag] = await cliAll([
      [['invalidate', '--config', file]],
      [['invalidate', '--email', 'a@b.co', '--external-id', 'x', '--config', file]],
      [['invalidate', '--email', 'a@b.co', '--card-key', 'bad key', '--config', file]],
      [['invalidate', '--email', 'a@b.co', '--nope', '--config', file]],
    ]);
    expect([none!.code, two!.code, badKey!.code, badFlag!.code]).toEqual([2, 2, 2, 2]);
    expect(none!.stderr).toContain('exactly one of --customer-id, --email or --external-id');
    expect(two!.stderr).toContain('--external-id');
  });
});

describe('events', () => {
  it('prints the newest events, filtered and limited, as JSON or a table', async () => {
    const { proxy, file } = await setup();
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_1'));
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_2'));

    const two = json(await cli(['events', '--customer-id', 'c_1', '--limit', '2', '--json', '--config', file]));
    expect(two.events).toHaveLength(2);
    expect(two.events.map((e: any) => [e.type, e.data.customerId]).sort()).toEqual([
      ['card.refreshed', 'c_1'],
      ['card.refreshed', 'c_1'],
    ]);
    expect(two.events[0].id > two.events[1].id).toBe(true);
    expect(two).toEqual((await admin(proxy, 'GET', '/admin/events?customerId=c_1&limit=2')).body);

    const table = await cli(['events', '--card-key', 'beta', '--type', 'card.refreshed', '--config', file]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+AT\s+TYPE\s+WORKSPACE\s+CUSTOMER\s+THREAD\s+CARD\s+DETAIL$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[4])).toEqual(['c_2', 'c_1']);
    expect(lines[1]).toMatch(/card\.refreshed\s+w_test\s+c_2\s+-\s+beta\s+ttl 300s from legacy/);

    const [limit, type] = await cliAll([[['events', '--limit', '0', '--config', file]], [['events', '--type', 'card.exploded', '--config', file]]]);
    expect(limit!.code).toBe(2);
    expect(type!.code).toBe(2);
    expect(type!.stderr).toContain('--type');
  });
});

describe('configuration and Redis', () => {
  it('exits 2 without a usable config and 1 when Redis cannot be reached', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ upstreams: {}, cards: {} }));
    const config = testConfig('http://127.0.0.1:9/cards');
    const [missing, noFile, invalid, down] = await cliAll([
      [['ttl', 'list']],
      [['events', '--config', join(dir, 'nope.json')]],
      [['replay', '--config', bad]],
      [['events', '--config', configFile(config)], { REDIS_URL: 'redis://127.0.0.1:1' }],
    ]);
    expect(missing!.code).toBe(2);
    expect(missing!.stderr).toContain('CARDPROXY_CONFIG');
    expect(noFile!.code).toBe(2);
    expect(invalid!.code).toBe(2);
    expect(invalid!.stderr).toContain('upstreams');
    expect(down!.code).toBe(1);
    expect(down!.stderr).toContain('cannot reach Redis at redis://127.0.0.1:1');
  });
});
