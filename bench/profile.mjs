/**
 * Scenario 6, profile of the warm path: a second `serve` process on the warm cache of scenario 1,
 * started with `node --cpu-prof`, under the headline load (5 keys, 50 connections). The profile
 * is summarised by package and by part of the warm path (bench/lib/cpuprofile.mjs).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cardKeys } from './lib/cardproxy.mjs';
import { summarizeProfile } from './lib/cpuprofile.mjs';
import { closedLoop } from './lib/wrk-load.mjs';
import { fmt, table } from './lib/util.mjs';

export async function runProfile(ctx, warm) {
  const seconds = ctx.quick ? 2 : 10;
  const keyCount = Number(process.env.BENCH_PROFILE_KEYS ?? 5);
  const profDir = join(warm.env.dir, 'cpuprofile');
  const proc = await warm.env.start('serve', 'serve-profiled', {
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=200'],
  });
  const spec = {
    url: `${proc.url}/cards`,
    connections: 50,
    keys: cardKeys(keyCount),
    customers: { prefix: 'cw', count: warm.customers, offset: 0 },
  };
  const generator = closedLoop();
  await generator.run({ ...spec, duration: 1 }); // JIT warm-up (also profiled, a small share)
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const load = await generator.run({ ...spec, duration: seconds });
  const toUs = Number(process.hrtime.bigint() / 1000n);
  await proc.stop();
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${profDir}`);
  const s = summarizeProfile(join(profDir, file), { top: 15, fromUs, toUs });
  const share = (ms) => fmt.pct(ms / s.busyMs);
  const perReq = (ms) => `${((ms * 1000) / Math.max(1, load.total)).toFixed(1)}`;
  const text = [
    `Profiled \`serve\` under ${keyCount} keys × 50 connections (${generator.name}) for ${seconds} s: ${fmt.int(load.rps)} req/s, p99 ${fmt.ms(load.latency.p99)} ms; ` +
      `only samples taken during the measured load are counted: CPU busy ${fmt.int(s.busyMs)} ms, idle ${fmt.int(s.idleMs)} ms of the main thread.`,
    '',
    'Where the time goes (inclusive: a sample counts for a part when any frame of its stack belongs to it; parts overlap):',
    '',
    table(['part', 'share of busy CPU', 'µs per request'], s.parts.map(([n, ms]) => [n, share(ms), perReq(ms)])),
    '',
    'Self time by package / product file:',
    '',
    table(['where', 'self share'], s.categories.map(([n, ms]) => [n, share(ms)])),
    '',
    'Hottest functions (self time):',
    '',
    table(['function', 'self share'], s.functions.map(([n, ms]) => [n.replaceAll('|', '\\|'), share(ms)])),
  ].join('\n');
  return { title: '6. Profile of the warm path', text, data: { load, summary: s }, targets: [] };
}
