/**
 * `npm run demo`: a simulated slow legacy card API plus cardproxy in front of it, and a guided
 * tour of curl commands to try.
 *
 * 1. Checks that Redis answers at `REDIS_URL` (default redis://127.0.0.1:6379) with a raw `PING`;
 *    when none does and `redis-server` is installed, starts a private one on a free port (stopped
 *    with the demo). Deletes the keys of the demo's prefix, so that every run starts cold.
 * 2. Starts the legacy API in this process on 127.0.0.1:8090 (3-8 s per request, 10 % `503`s).
 * 3. Writes a demo config to a temp file and runs `node dist/cli.js start --config <file>` as a
 *    child process, its output prefixed with `[cardproxy]`.
 * 4. Waits for `/healthz`, prints the tour, and on Ctrl-C stops both.
 *
 * Environment: `REDIS_URL`, `PORT` (cardproxy's port, default 8080), `DEMO_LEGACY_PORT`
 * (the legacy API's port, default 8090).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startLegacyApi, type LegacyApi } from './legacy-api.js';
import { redisServerInstalled, startPrivateRedis, type PrivateRedis } from './private-redis.js';
import { deleteMatching } from '../redis/scan-keys.js';

const ADMIN_TOKEN = 'demo-admin-token';
const DEMO_KEY_PREFIX = 'cardproxy-demo';

/** Deletes every key under `<prefix>:`; returns how many. */
async function clearPrefix(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => {});
  let deleted = 0;
  try {
    await redis.connect();
    deleted = await deleteMatching(redis, `${prefix}:*`);
  } finally {
    redis.disconnect();
  }
  return deleted;
}
const WORKSPACE_ID = 'w_demo';

/** Encodes a command in RESP, the Redis wire protocol. */
function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/**
 * Sends `PING` (after `AUTH` when the URL carries credentials) over a raw connection.
 * Resolves `{ ok: true }` on `+PONG`, otherwise `{ ok: false, reason }`.
 */
function pingRedis(redisUrl: string, timeoutMs = 2000): Promise<{ ok: true } | { ok: false; reason: string }> {
  let url: URL;
  try {
    url = new URL(redisUrl);
  } catch {
    return Promise.resolve({ ok: false, reason: `REDIS_URL ${JSON.stringify(redisUrl)} is not a URL` });
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    return Promise.resolve({ ok: false, reason: `REDIS_URL must start with redis:// or rediss://` });
  }
  const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(url.port || 6379);
  const password = decodeURIComponent(url.password);
  const username = decodeURIComponent(url.username);

  return new Promise((resolve) => {
    let settled = false;
    let reply = '';
    const socket: Socket =
      url.protocol === 'rediss:' ? tlsConnect({ host, port, servername: host }) : netConnect({ host, port });
    const done = (result: { ok: true } | { ok: false; reason: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    // AUTH and PING both answer with one simple-string line (`+OK`, `+PONG`) or an error (`-ERR …`).
    const expected = password ? 2 : 1;
    socket.once(url.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => {
      const auth = password ? (username ? resp('AUTH', username, password) : resp('AUTH', password)) : '';
      socket.write(auth + resp('PING'));
    });
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      const lines = reply.split('\r\n').slice(0, -1);
      if (lines.length < expected) return;
      const last = lines[expected - 1];
      if (last === '+PONG') done({ ok: true });
      else done({ ok: false, reason: `Redis answered ${lines.find((l) => l.startsWith('-')) ?? last}` });
    });
    socket.once('error', (err) => done({ ok: false, reason: err.message }));
    socket.once('close', () => done({ ok: false, reason: 'connection closed without an answer' }));
  });
}

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`demo: ${name}=${JSON.stringify(raw)} is not a port number`);
    process.exit(2);
  }
  return port;
}

/** The demo configuration (SPEC section 4 shape). */
function demoConfig(opts: { legacyUrl: string; redisUrl: string; port: number }): Record<string, unknown> {
  const loading = (what: string): unknown[] => [
    { componentText: { text: `Loading ${what} from the legacy system…`, textColor: 'MUTED' } },
  ];
  return {
    listen: { host: '127.0.0.1', port: opts.port },
    redis: { url: opts.redisUrl, keyPrefix: DEMO_KEY_PREFIX },
    plain: { signingSecrets: [] },
    admin: { token: ADMIN_TOKEN },
    budgetMs: 2000,
    upstreams: {
      legacy: {
        url: opts.legacyUrl,
        headers: { Authorization: 'Bearer demo-legacy-token' },
        timeoutMs: 20000,
        concurrency: 4,
      },
    },
    cards: {
      'subscription-details': { upstream: 'legacy', ttlSeconds: 60, placeholder: loading('subscription') },
      'latest-invoices': { upstream: 'legacy', ttlSeconds: 120, placeholder: loading('invoices') },
      usage: { upstream: 'legacy', ttlSeconds: 30, staleSeconds: 3600, placeholder: loading('usage') },
      'customer-details': { upstream: 'legacy', ttlSeconds: 300, placeholder: loading('customer details') },
    },
  };
}

/** The guided tour printed once cardproxy is up. */
function tour(port: number, legacyUrl: string): string {
  const base = `localhost:${port}`;
  const body = JSON.stringify({
    cardKeys: ['subscription-details', 'latest-invoices', 'usage'],
    customer: { id: 'c_demo_1', email: 'alex@example.com', externalId: null },
  });
  const cards =
    `curl -s -w '\\n(%{time_total}s)\\n' -X POST ${base}/cards -H 'Content-Type: application/json' ` +
    `-H 'Plain-Workspace-Id: ${WORKSPACE_ID}' -d '${body}'`;
  const auth = `-H 'Authorization: Bearer ${ADMIN_TOKEN}'`;
  return `
──────────────────────────────────────────────────────────────────────────────
 cardproxy demo is running

   cardproxy          http://${base}      (budget 2 s per /cards request)
   legacy card API    ${legacyUrl}   (3-8 s per request, 10 % answer 503)

 a) Cold load. Nothing is cached, the legacy API needs 3-8 s, so after the 2 s budget
    cardproxy answers with "Loading …" placeholders (timeToLiveSeconds 15, so Plain asks
    again soon) while the refresh carries on in the background:

    ${cards}

 b) Run the same command again ~10 seconds later: the cards are warm and come from Redis
    in a few milliseconds. Each card ends with a "Generated at" line from the legacy API.

 c) Wait until the usage card's 30 s TTL has passed and run it once more: the stale usage
    card is served at once (timeToLiveSeconds 15) and one background refresh is enqueued;
    a later call shows a new "Generated at" time. (The legacy API fails 10 % of requests:
    cardproxy retries once after 1 s and keeps serving the stale copy meanwhile.)

 d) Admin API: the configured cards, a run-time TTL override, the event log:

    curl -s ${base}/admin/cards ${auth}
    curl -s -X PUT ${base}/admin/cards/usage/ttl ${auth} -H 'Content-Type: application/json' -d '{"ttlSeconds":10}'
    curl -s '${base}/admin/events?limit=5' ${auth}

 e) Prometheus metrics (hit rates, upstream latency, queue depth):

    curl -s ${base}/metrics | grep -E '^cardproxy_(card_lookups|cards_served|budget_exhausted)'

 f) Operator console: the cards as an agent sees them in Plain, with their state, TTL
    source and last failure, the customer's event timeline, refresh and invalidate buttons,
    editable TTL overrides and a live overview. Open it, enter the admin token
    ${ADMIN_TOKEN}, then search the email alex@example.com:

    http://${base}/console
    http://${base}/console#/customer/${WORKSPACE_ID}/c_demo_1      (after step a)

 Press Ctrl-C to stop cardproxy and the legacy API.
──────────────────────────────────────────────────────────────────────────────
`;
}

/** Copies a child's output stream line by line with a prefix. */
function pipeWithPrefix(stream: NodeJS.ReadableStream | null, prefix: string, out: NodeJS.WriteStream): void {
  if (!stream) return;
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(`${prefix} ${line}\n`));
}

async function waitForHealth(port: number, child: ChildProcess, timeoutMs: number): Promise<'up' | 'exited' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return 'exited';
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.ok) return 'up';
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return 'timeout';
}

async function main(): Promise<void> {
  let redisUrl = process.env.REDIS_URL?.trim() || 'redis://127.0.0.1:6379';
  const port = portFromEnv('PORT', 8080);
  const legacyPort = portFromEnv('DEMO_LEGACY_PORT', 8090);

  let ping = await pingRedis(redisUrl);
  let privateRedis: PrivateRedis | undefined;
  if (!ping.ok && redisServerInstalled()) {
    console.log(`demo: Redis does not answer at ${redisUrl} (${ping.reason}); starting a private redis-server for this run`);
    privateRedis = await startPrivateRedis(async (url) => (await pingRedis(url, 500)).ok);
    redisUrl = privateRedis.url;
    ping = { ok: true };
  }
  if (!ping.ok) {
    console.error(`demo: Redis does not answer at ${redisUrl} (${ping.reason}).

cardproxy keeps its cards, event log and refresh queue in Redis 6.2 or newer. Either
  - install and start one locally:
      apt-get install redis-server        (Debian/Ubuntu; brew install redis on macOS)
      redis-server --daemonize yes
  - or run one in Docker:  docker run -d -p 6379:6379 redis:7
  - or point the demo at an existing one:  REDIS_URL=redis://host:6379 npm run demo
`);
    process.exit(1);
  }

  // The tour says "nothing is cached": make it so, whatever an earlier run left behind.
  const cleared = await clearPrefix(redisUrl, DEMO_KEY_PREFIX);
  if (cleared > 0) console.log(`demo: deleted ${cleared} keys of the previous demo run (prefix ${DEMO_KEY_PREFIX}:)`);

  const cliPath = fileURLToPath(new URL('../cli.js', import.meta.url));
  if (!existsSync(cliPath)) {
    console.error(`demo: ${cliPath} does not exist; build first with \`npm run build\` (npm run demo does that).`);
    process.exit(1);
  }

  let legacy: LegacyApi;
  try {
    legacy = await startLegacyApi({
      host: '127.0.0.1',
      port: legacyPort,
      minLatencyMs: 3000,
      maxLatencyMs: 8000,
      failureRate: 0.1,
      log: (line) => process.stdout.write(`[legacy-api] ${line}\n`),
    });
  } catch (err) {
    console.error(
      `demo: could not start the legacy API on 127.0.0.1:${legacyPort}: ${(err as Error).message}` +
        ' (set DEMO_LEGACY_PORT to use another port)',
    );
    process.exit(1);
  }

  const dir = mkdtempSync(join(tmpdir(), 'cardproxy-demo-'));
  const configFile = join(dir, 'cardproxy-demo.json');
  writeFileSync(configFile, `${JSON.stringify(demoConfig({ legacyUrl: legacy.url, redisUrl, port }), null, 2)}\n`);
  console.log(`demo: Redis answers at ${redisUrl}; legacy API at ${legacy.url}; config written to ${configFile}`);

  const child = spawn(process.execPath, [cliPath, 'start', '--config', configFile], {
    env: { ...process.env, REDIS_URL: redisUrl, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a Ctrl-C in the terminal reaches only this process, which forwards
    // exactly one signal (a second one could make cardproxy skip its graceful shutdown).
    detached: true,
  });
  // Never leave cardproxy running behind us, whatever way this process ends.
  process.once('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  pipeWithPrefix(child.stdout, '[cardproxy]', process.stdout);
  pipeWithPrefix(child.stderr, '[cardproxy]', process.stderr);

  let stopping = false;
  const cleanUp = async (): Promise<void> => {
    await legacy.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    privateRedis?.stop();
  };

  child.once('exit', (code, signal) => {
    if (stopping) return;
    console.error(`demo: cardproxy exited unexpectedly (${signal ?? `code ${code}`}); stopping the legacy API.`);
    void cleanUp().then(() => process.exit(1));
  });
  child.once('error', (err) => {
    if (stopping) return;
    console.error(`demo: could not run cardproxy: ${err.message}`);
    void cleanUp().then(() => process.exit(1));
  });

  const stop = (signal: NodeJS.Signals, exitCode = 0): void => {
    if (stopping) return;
    stopping = true;
    console.log(`\ndemo: ${signal} received, stopping cardproxy and the legacy API…`);
    const finished = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    child.kill(signal);
    // cardproxy finishes in-flight requests and active jobs (bounded by the upstream time-out).
    const force = setTimeout(() => {
      console.error('demo: cardproxy did not stop within 25 s, killing it');
      child.kill('SIGKILL');
    }, 25_000);
    void finished.then(async () => {
      clearTimeout(force);
      await cleanUp();
      const { requests, failures } = legacy.stats();
      console.log(`demo: stopped (the legacy API served ${requests} requests, ${failures} simulated failures).`);
      process.exit(exitCode);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  const health = await waitForHealth(port, child, 30_000);
  if (stopping) return;
  if (health === 'exited') return; // the exit handler reports and cleans up
  if (health === 'timeout') {
    console.error(`demo: cardproxy did not answer GET http://127.0.0.1:${port}/healthz within 30 s; stopping.`);
    stop('SIGTERM', 1);
    return;
  }
  console.log(tour(port, legacy.url));
}

main().catch((err: unknown) => {
  console.error('demo failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
