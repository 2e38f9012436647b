/**
 * Runs a load generator in a child process and returns its result: closed loop with autocannon
 * (bench/lib/load-worker.mjs) or open loop at an even pace (bench/lib/paced-load-worker.mjs).
 * The warm scenario's closed and open loops use wrk when it is installed (bench/lib/wrk-load.mjs).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SECRET, WORKSPACE_ID } from './cardproxy.mjs';

const CLOSED_LOOP = fileURLToPath(new URL('./load-worker.mjs', import.meta.url));
const OPEN_LOOP = fileURLToPath(new URL('./paced-load-worker.mjs', import.meta.url));
const active = new Set();

/**
 * @param spec { url, connections, duration? (s), amount?, keys, customers: {prefix, count?, offset},
 *               threads?: {prefix}, timeout? (s), cpu? (pin the load generator to this CPU) }
 */
export function runLoad(spec) {
  return runWorker(CLOSED_LOOP, spec);
}

/**
 * Open loop: `rate` requests a second, evenly spaced, over at most `connections` connections;
 * latency from when each request was due (see paced-load-worker.mjs).
 * @param spec as for runLoad, with `rate` and `duration` (no `amount`)
 */
export function runPacedLoad(spec) {
  return runWorker(OPEN_LOOP, spec);
}

function runWorker(worker, spec) {
  const full = { workspaceId: WORKSPACE_ID, secret: SECRET, ...spec };
  // Hard bound: the run's own length plus a minute, whatever happens.
  const limitMs = ((spec.duration ?? 0) + (spec.timeout ?? 30)) * 1000 + 60_000 + (spec.amount ? 120_000 : 0);
  // `cpu`: run the load generator on that CPU only (taskset), away from the server it measures.
  return runTracked(pinned(spec.cpu, [process.execPath, worker, JSON.stringify(full)]), limitMs).then((out) => {
    const line = out.trim().split('\n').pop();
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`load generator printed no result: ${out.slice(-2000)}`);
    }
  });
}

/** `argv` run on CPU `cpu` only (taskset), or anywhere when `cpu` is undefined. */
export function pinned(cpu, argv) {
  return cpu === undefined ? argv : ['taskset', '-c', String(cpu), ...argv];
}

/**
 * Runs `argv` as a child process that killLoads() stops, killed after `limitMs`; resolves with
 * its stdout when it exits with 0, rejects with the end of its stderr otherwise.
 */
export function runTracked([command, ...args], limitMs) {
  return new Promise((resolve, reject) => {
    // Its own process group, so that killing it stops what it started too (wrk under a shell).
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    active.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => kill(child), limitMs);
    // `close`, not `exit`: all of its output has been read by then.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      active.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`load generator ${command} failed (${code ?? signal}): ${(err || out).slice(-2000)}`));
    });
  });
}

export function killLoads() {
  for (const child of active) kill(child);
}

function kill(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
