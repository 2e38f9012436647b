#!/usr/bin/env node
/**
 * `npm run bench [-- --quick] [-- --only firstlook,warm,cold,stampede,shielding,memory,profile] [-- --out FILE] [-- --keep]`
 *
 * Runs the benchmark scenarios against the built product (dist/) and the real Redis at
 * REDIS_URL (default redis://127.0.0.1:6379, 127.0.0.1 only), prints a table per scenario and a
 * PASS/MISS summary of the targets. Every scenario uses its own Redis key prefix and deletes its
 * keys when done; every process it starts is stopped by pid.
 */
import { cpus, totalmem, tmpdir } from 'node:os';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, stopAll } from './lib/cardproxy.mjs';
import { killLoads } from './lib/load.mjs';
import { REDIS_URL, assertLocalRedis, connect, deletePrefix } from './lib/redis.mjs';
import { table } from './lib/util.mjs';

const ALL = ['firstlook', 'warm', 'profile', 'cold', 'stampede', 'shielding', 'memory'];
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
  strict: true,
});
const only = values.only ? values.only.split(',').map((s) => s.trim()) : ALL;
for (const name of only) if (!ALL.includes(name)) throw new Error(`unknown scenario "${name}" (known: ${ALL.join(', ')})`);
const quick = values.quick;

if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
assertLocalRedis();

const redis = connect();
const tmpDir = mkdtempSync(join(tmpdir(), 'cardproxy-bench-'));
const output = [];
const say = (line = '') => {
  output.push(line);
  process.stdout.write(`${line}\n`);
};
const ctx = { quick, redis, tmpDir, prefixes: new Set(), log: (line) => process.stdout.write(`${line}\n`) };

let cleaning;
async function cleanup() {
  cleaning ??= (async () => {
    killLoads();
    await stopAll();
    for (const prefix of ctx.prefixes) await deletePrefix(redis, prefix).catch(() => {});
    redis.disconnect();
    if (!values.keep) rmSync(tmpDir, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping benchmark processes and deleting its Redis keys\n`);
    cleanup().finally(() => process.exit(130));
  });
}
// The whole run is bounded: quick 6 minutes, full 25 minutes.
const watchdog = setTimeout(() => {
  process.stderr.write('benchmark took too long: aborting\n');
  cleanup().finally(() => process.exit(3));
}, (quick ? 6 : 25) * 60_000);
watchdog.unref();

const started = Date.now();
const serverInfo = await redis.info('server');
const redisVersion = /redis_version:(\S+)/.exec(serverInfo)?.[1] ?? '?';
say(`# cardproxy benchmark (${quick ? 'quick' : 'full'} run, ${new Date().toISOString()})`);
say();
say(`product: ${CLI}`);
say(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; Node ${process.version}; Redis ${redisVersion} at ${REDIS_URL}`);

const sections = [];
let failed = false;
try {
  const want = (name) => only.includes(name);
  if (want('firstlook')) sections.push(await section('0. first look', async () => (await import('./first-look.mjs')).runFirstLook(ctx)));
  if (want('warm') || want('profile')) {
    const { setupWarm, runWarm } = await import('./warm.mjs');
    const { runProfile } = await import('./profile.mjs');
    ctx.log('\n== warm-up for scenarios 1 and 6');
    const warm = await setupWarm(ctx);
    try {
      if (want('warm')) sections.push(await section('1. warm hits', () => runWarm(ctx, warm)));
      if (want('profile')) sections.push(await section('6. profile', () => runProfile(ctx, warm)));
    } finally {
      await warm.env.close();
    }
  }
  if (want('cold')) sections.push(await section('2. cold storm', async () => (await import('./cold-storm.mjs')).runColdStorm(ctx)));
  if (want('stampede')) sections.push(await section('3. stampede', async () => (await import('./stampede.mjs')).runStampede(ctx)));
  if (want('shielding')) sections.push(await section('4. shielding', async () => (await import('./shielding.mjs')).runShielding(ctx)));
  if (want('memory')) sections.push(await section('5. memory', async () => (await import('./memory.mjs')).runMemory(ctx)));
} catch (err) {
  failed = true;
  process.stderr.write(`benchmark failed: ${err?.stack ?? err}\n`);
} finally {
  const targets = sections.flatMap((s) => s.targets ?? []);
  if (targets.length > 0) {
    say();
    say('## Targets');
    say();
    say(table(['target', 'goal', 'measured', 'verdict'], targets.map((t) => [t.name, t.goal, t.measured, t.pass ? 'PASS' : 'MISS'])));
  }
  say();
  say(`total time ${((Date.now() - started) / 1000).toFixed(0)} s${values.keep ? `; logs and profiles kept in ${tmpDir}` : ''}`);
  if (values.out) writeFileSync(values.out, `${output.join('\n')}\n`);
  await cleanup();
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);

async function section(name, fn) {
  ctx.log(`\n== ${name}`);
  const t0 = Date.now();
  const result = await fn();
  say();
  say(`## ${result.title}`);
  say();
  say(result.text);
  ctx.log(`(${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  return result;
}
