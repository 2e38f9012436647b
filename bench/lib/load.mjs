/**
 * Runs a load generator in a child process and returns its result: closed loop with autocannon
 * (bench/lib/load-worker.mjs) or open loop at an even pace (bench/lib/paced-load-worker.mjs).
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
  return new Promise((resolve, reject) => {
    // `cpu`: run the load generator on that CPU only (taskset), away from the server it measures.
    const argv = [process.execPath, worker, JSON.stringify(full)];
    const [command, ...args] = spec.cpu === undefined ? argv : ['taskset', '-c', String(spec.cpu), ...argv];
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    active.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      active.delete(child);
      const line = out.trim().split('\n').pop();
      if (code === 0 && line) {
        try {
          resolve(JSON.parse(line));
          return;
        } catch {
          // fall through
        }
      }
      reject(new Error(`load generator failed (${code ?? signal}): ${err.slice(-2000)}`));
    });
  });
}

export function killLoads() {
  for (const child of active) child.kill('SIGKILL');
}
