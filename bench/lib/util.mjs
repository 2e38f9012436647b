/**
 * Small shared helpers of the benchmark suite: ports, timing, statistics, formatting.
 * Every wait here is bounded in time.
 */
import { createServer } from 'node:net';
import { createHmac } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export const HOST = '127.0.0.1';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free TCP port on 127.0.0.1 (bound once and released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `check` every `everyMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(check, { timeoutMs, everyMs = 100, what = 'condition' }) {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 1_000_000; i++) {
    const value = await check();
    if (value) return value;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export function median(values) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Nearest-rank percentile of an already sorted numeric array (p in 0..100). */
export function percentileSorted(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Count, mean, p50, p90, p99 and max of latencies in ms (sorts the array in place). */
export function latencySummary(latencies) {
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    p50: percentileSorted(latencies, 50),
    p90: percentileSorted(latencies, 90),
    p99: percentileSorted(latencies, 99),
    max: latencies.length ? latencies[latencies.length - 1] : NaN,
  };
}

export function sign(secret, body) {
  return createHmac('sha256', secret).update(body).digest('hex');
}

export const fmt = {
  int: (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-'),
  ms: (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-'),
  ratio: (n) => (Number.isFinite(n) ? n.toFixed(2) : '-'),
  pct: (n) => (Number.isFinite(n) ? `${(n * 100).toFixed(0)}%` : '-'),
  bytes: (n) => {
    if (!Number.isFinite(n)) return '-';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let v = n;
    let u = 0;
    while (Math.abs(v) >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return `${u === 0 ? Math.round(v) : v.toFixed(u >= 2 ? 2 : 1)} ${units[u]}`;
  },
};

/** Renders rows (arrays of strings) as a Markdown table, so the output pastes into BENCHMARKS.md. */
export function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => (r[i] ?? '').length)));
  const line = (r) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const sep = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(all[0]), sep, ...all.slice(1).map(line)].join('\n');
}

/** A target line: `PASS`/`MISS` beside a measured value. */
export function target(name, pass, measured, goal) {
  return { name, pass: Boolean(pass), measured, goal };
}

/** Upstream loads per distinct card: `1.00` when exact, else with the surplus spelled out. */
export function amplification(loads, distinct) {
  if (loads === distinct) return '1.00';
  return `${(loads / Math.max(1, distinct)).toFixed(4)} (${loads - distinct > 0 ? '+' : ''}${loads - distinct} loads)`;
}

let ticks;
/** The kernel's clock ticks per second, the unit of /proc/<pid>/stat's CPU times. */
function clockTicks() {
  ticks ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  return ticks;
}

/**
 * CPU times from a /proc/<pid>/stat line, in ms: user (the process's own code: JavaScript, V8,
 * Node's C++, libraries), system (the kernel working for it: socket reads and writes, timers) and
 * children (user + system of its children that have exited and been waited for).
 */
export function statCpuMs(stat) {
  // Fields after the command name (which may hold spaces) start at index 2 ("state").
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ms = (i) => (Number(fields[i]) * 1000) / clockTicks();
  return { user: ms(11), system: ms(12), children: ms(13) + ms(14) };
}

/** CPU time a process has used so far, in ms (Linux): see statCpuMs. */
export function processCpuSplitMs(pid) {
  return statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * CPU pinning for measurements of server CPU: the server processes on CPU 0 and the load
 * generator on CPU 1, so that neither takes the other's core (the way issue 13 measured). Off
 * with BENCH_PIN=0, and on a machine with one CPU or without `taskset`.
 */
export function cpuPinning() {
  if (process.env.BENCH_PIN === '0' || cpus().length < 2) return null;
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  return {
    server: 0,
    load: 1,
    /** Pins every thread of process `pid` to the server CPU. */
    pinServer(pid) {
      execFileSync('taskset', ['-a', '-c', '-p', '0', String(pid)], { stdio: 'ignore' });
    },
  };
}
