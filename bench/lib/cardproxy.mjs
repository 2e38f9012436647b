/**
 * Runs the real, built product: `node dist/cli.js start|serve|worker --config FILE` as child
 * processes with a generated config in a temp dir, logs to a file there. Tracks every process it
 * started, so the runner can stop exactly those (by pid) whatever happens.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOST, freePort, sign, sleep, waitFor } from './util.mjs';
import { REDIS_URL } from './redis.mjs';

/** The product under test; CARDPROXY_BENCH_ROOT points at another built checkout to compare builds. */
export const ROOT = resolve(process.env.CARDPROXY_BENCH_ROOT ?? fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(ROOT, 'dist', 'cli.js');
export const WORKSPACE_ID = 'w_bench';
export const SECRET = 'bench-signing-secret';

const running = new Set();

/** `card-01` … `card-NN`. */
export const cardKeys = (n) => Array.from({ length: n }, (_, i) => `card-${String(i + 1).padStart(2, '0')}`);

/** A config for one scenario: one upstream `legacy`, `cards` all served by it. */
export function makeConfig({ prefix, upstreamUrl, budgetMs = 1000, concurrency = 16, cards = cardKeys(25), ttlSeconds = 3600, timeoutMs = 30_000 }) {
  return {
    listen: { host: HOST, port: 0 },
    redis: { url: REDIS_URL, keyPrefix: prefix },
    plain: { signingSecrets: [SECRET] },
    budgetMs,
    defaults: { ttlSeconds, staleSeconds: 86_400 },
    upstreams: { legacy: { url: upstreamUrl, timeoutMs, concurrency, retries: 1, retryDelayMs: 200 } },
    cards: Object.fromEntries(cards.map((key) => [key, { upstream: 'legacy' }])),
    worker: { lockDurationMs: 30_000, stalledIntervalMs: 30_000 },
  };
}

export function writeConfig(dir, name, config) {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

/**
 * Starts `node [nodeArgs] dist/cli.js <role> --config <path>` on a free port and waits until its
 * /readyz answers 200 (30 s at most).
 */
export async function startProcess({ role, configPath, dir, name = role, nodeArgs = [], env = {} }) {
  const port = await freePort();
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...nodeArgs, CLI, role, '--config', configPath], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), REDIS_URL, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const proc = {
    role,
    name,
    pid: child.pid,
    port,
    url: `http://${HOST}:${port}`,
    logFile,
    exited: false,
    exitCode: null,
    child,
    stop: () => stopProcess(proc),
  };
  const exited = new Promise((res) => child.once('exit', (code, signal) => {
    proc.exited = true;
    proc.exitCode = code ?? signal;
    running.delete(proc);
    res();
  }));
  proc.exitedPromise = exited;
  running.add(proc);
  try {
    await waitFor(
      async () => {
        if (proc.exited) throw new Error(`${name} exited with ${proc.exitCode}:\n${tail(logFile)}`);
        try {
          const r = await fetch(`${proc.url}/readyz`, { signal: AbortSignal.timeout(1000) });
          await r.arrayBuffer();
          return r.status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, everyMs: 100, what: `${name} to be ready` },
    );
  } catch (err) {
    await stopProcess(proc);
    throw err;
  }
  return proc;
}

/** SIGTERM, then SIGKILL after 20 s; resolves once the process is gone. */
export async function stopProcess(proc) {
  if (proc.exited) return;
  proc.child.kill('SIGTERM');
  const killed = await Promise.race([proc.exitedPromise.then(() => false), sleep(20_000).then(() => true)]);
  if (killed && !proc.exited) {
    proc.child.kill('SIGKILL');
    await Promise.race([proc.exitedPromise, sleep(5000)]);
  }
}

/** Stops every process this module started and that still runs. */
export async function stopAll() {
  await Promise.all([...running].map((p) => stopProcess(p)));
}

function tail(file, lines = 20) {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

export function cardsBody({ customerId, keys, threadId = null }) {
  return JSON.stringify({
    cardKeys: keys,
    customer: { id: customerId, email: `${customerId}@example.com`, externalId: `ext-${customerId}` },
    thread: threadId === null ? null : { id: threadId, externalId: null },
    tenant: null,
  });
}

/** One signed `POST /cards` from this process; returns { status, text, ms }. */
export async function postCards(baseUrl, { customerId, keys, threadId = null, timeoutMs = 20_000 }) {
  const body = cardsBody({ customerId, keys, threadId });
  const started = performance.now();
  const r = await fetch(`${baseUrl}/cards`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'plain-workspace-id': WORKSPACE_ID, 'plain-request-signature': sign(SECRET, body) },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await r.text();
  return { status: r.status, text, ms: performance.now() - started };
}

/** Scrapes /metrics into { 'name{labels}': value } (only the series asked for, by name prefix). */
export async function scrapeMetrics(baseUrl, prefixes) {
  const r = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  const out = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !prefixes.some((p) => line.startsWith(p))) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

/** Sums series of `name` whose labels include `label="value"`, grouped by that label's value. */
export function sumBy(metrics, name, label) {
  const out = {};
  const re = new RegExp(`${label}="([^"]*)"`);
  for (const [series, value] of Object.entries(metrics)) {
    if (!series.startsWith(`${name}{`) && series !== name) continue;
    const m = re.exec(series);
    if (!m) continue;
    out[m[1]] = (out[m[1]] ?? 0) + value;
  }
  return out;
}

export function mergeCounts(...maps) {
  const out = {};
  for (const m of maps) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/**
 * Server-side answer times from a process log: per `cards answered` line, the largest `ms` of its
 * keys (request arrival to answer ready, by the server's clock). Sorted ascending.
 */
export function answeredMsFromLog(logFile) {
  const out = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"cards answered"')) continue;
    try {
      const keys = JSON.parse(line).keys ?? [];
      out.push(Math.max(0, ...keys.map((k) => Number(k.ms) || 0)));
    } catch {
      // not a JSON line
    }
  }
  return out.sort((a, b) => a - b);
}

/** How often each log message appears in a process log (for warnings worth reporting). */
export function logMessageCounts(logFile, { minLevel = 40 } = {}) {
  const counts = {};
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line);
      if ((entry.level ?? 0) >= minLevel) counts[entry.msg] = (counts[entry.msg] ?? 0) + 1;
    } catch {
      // not a JSON line
    }
  }
  return counts;
}
