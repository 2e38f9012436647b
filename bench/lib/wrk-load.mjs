/**
 * Load with wrk (a C load generator, Debian package `wrk`) for the warm scenario, closed and open
 * loop: a Node.js generator spends more CPU per request than the bare baseline server it
 * measures, and so set the baseline's pace (its share of a core was 90-98 %) and part of every
 * p99. wrk sends each request as a prepared string from a pre-signed set: closed loop
 * (bench/lib/wrk-cards.lua) one thread, `connections` keep-alive connections; open loop
 * (bench/lib/wrk-paced.lua) one thread per connection, on a schedule.
 *
 * Its CPU time is read from a wrapping shell's /proc/<pid>/stat (the children's CPU time, once wrk
 * has exited), so its share of a core is reported like the other generators'.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SECRET, WORKSPACE_ID } from './cardproxy.mjs';
import { pinned, runLoad, runPacedLoad, runTracked } from './load.mjs';
import { requestSet } from './request-set.mjs';
import { statCpuMs } from './util.mjs';

const SCRIPT = fileURLToPath(new URL('./wrk-cards.lua', import.meta.url));
const PACED_SCRIPT = fileURLToPath(new URL('./wrk-paced.lua', import.meta.url));

/**
 * The closed-loop generator of the warm path's measurements: wrk when it is on the PATH,
 * autocannon otherwise. `run(spec)` takes runLoad's spec; `name` says which one ran.
 */
export function closedLoop() {
  if (wrkAvailable()) return { run: runWrkLoad, name: 'wrk (one thread)' };
  return { run: runLoad, name: "autocannon (wrk not found: `apt-get install wrk` for a generator that does not set the baseline's pace)" };
}

/**
 * The open-loop generator: wrk (wrk-paced.lua) when it is on the PATH, the Node.js one
 * (paced-load-worker.mjs) otherwise. `run(spec)` takes runPacedLoad's spec.
 */
export function pacedLoop() {
  if (wrkAvailable()) return { run: runWrkPaced, name: 'wrk, one thread per connection' };
  return { run: runPacedLoad, name: 'Node.js (wrk not found)' };
}

function wrkAvailable() {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk --version prints its usage and exits 1: it is there.
    return err?.status === 1;
  }
}

/**
 * Distinct requests a run may need: with unique thread ids every request is new (a repeated
 * single-key (customer, thread) pair would be a manual reload, SPEC 5.6), up to this many a second.
 */
const MAX_RATE = 60_000;

/**
 * @param spec { url, connections, duration (s), keys, customers, threads?, cpu? }
 * @returns the shape of runLoad's result: rps, total, errors, non2xx, cpuMs, wallMs, latency (ms)
 */
export async function runWrkLoad(spec) {
  const { result, ...run } = await runWrk(spec, SCRIPT, 1, []);
  return { ...run, rps: (result.requests * 1_000_000) / result.durationUs, total: result.requests, latency: latencyOf(result, result.requests) };
}

/**
 * Open-loop load with wrk: `spec.rate` requests a second, evenly spaced, over `spec.connections`
 * connections, one wrk thread each (bench/lib/wrk-paced.lua says why), latency counted from when
 * each request was due. The same figures as runPacedLoad (the Node.js generator, which added a
 * tail of its own: 5 % of its requests went out over 2 ms late at 7,000 req/s), plus
 * `serverLatency` (ms: p50, p99, max): the latency without what this generator added by sending
 * a request after it could have gone, and `lateP99` (ms): the 99th percentile of that delay.
 */
export async function runWrkPaced(spec) {
  const { result, ...run } = await runWrk(spec, PACED_SCRIPT, spec.connections, [String(spec.rate), String(spec.connections)]);
  return {
    ...run,
    rate: spec.rate,
    rps: (result.answered * 1_000_000) / result.scheduledUs,
    total: result.answered,
    sent: result.sent,
    lateSends: result.lateOver2ms,
    lateP99: ms(result.lateP99),
    latency: latencyOf(result, result.answered),
    serverLatency: { p50: ms(result.serverP50), p99: ms(result.serverP99), max: ms(result.serverMax) },
  };
}

const ms = (us) => us / 1000;

/** wrk's percentiles (µs) as the other generators report them (ms). */
function latencyOf(result, count) {
  return { count, mean: ms(result.mean), p50: ms(result.p50), p90: ms(result.p90), p99: ms(result.p99), max: ms(result.max) };
}

/**
 * Runs wrk with `script` on a file of pre-signed requests for `spec`, `threads` threads; resolves
 * with the JSON line its done() printed (`result`) and the run's errors, CPU time and wall time.
 */
async function runWrk(spec, script, threads, scriptArgs) {
  const { url, connections, cpu } = spec;
  const duration = Math.ceil(spec.duration); // wrk takes whole seconds
  // Without thread ids request n asks for customer n mod count: that many requests, cycled, are
  // the same sequence.
  const size = spec.threads || !spec.customers.count ? Math.ceil(duration * MAX_RATE) : spec.customers.count;
  const dir = mkdtempSync(join(tmpdir(), 'cardproxy-wrk-'));
  try {
    const requests = requestSet({ workspaceId: WORKSPACE_ID, secret: SECRET, ...spec, prebuilt: 0 });
    const set = new Array(size);
    for (let i = 0; i < size; i++) {
      const { body, headers } = requests.next();
      set[i] = `${headers['plain-request-signature']}\t${body}\n`;
    }
    const file = join(dir, 'requests.txt');
    writeFileSync(file, set.join(''));
    const wrk = ['wrk', `-t${threads}`, `-c${connections}`, `-d${duration}s`, '--timeout', '30s', '-s', script, url, '--', file, WORKSPACE_ID, ...scriptArgs];
    // The shell waits for wrk, then prints its own stat line, whose children's CPU time is wrk's.
    const shell = ['sh', '-c', '"$@"; status=$?; echo "stat $(cat /proc/$$/stat)"; exit $status', 'sh', ...pinned(cpu, wrk)];
    const started = performance.now();
    const out = await runTracked(shell, (duration + 120) * 1000);
    // Its CPU share is over its whole life, reading the request set included (wrk's own clock
    // starts after that, and a set of unique requests takes a while to read).
    const lifeMs = performance.now() - started;
    const lines = out.split('\n');
    const result = JSON.parse(lines.findLast((l) => l.startsWith('{')) ?? 'null');
    const stat = lines.findLast((l) => l.startsWith('stat '));
    if (!result || !stat) throw new Error(`wrk printed no result: ${out.slice(-2000)}`);
    const errors = result.connectErrors + result.readErrors + result.writeErrors + result.timeouts;
    return {
      result,
      errors,
      non2xx: result.non2xx,
      statuses: { 'non-2xx': result.non2xx, errors },
      cpuMs: statCpuMs(stat).children,
      wallMs: lifeMs,
      prebuilt: size,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
