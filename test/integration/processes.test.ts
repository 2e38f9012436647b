/**
 * SPEC sections 3, 4 and 9 against real processes: `node dist/cli.js <command>` spawned with
 * config files in a temporary directory, the real Redis, and fake upstreams in this process.
 * Every spawned process is killed after its test; its output is kept for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cardsReply, startFakeUpstream, textOf, type FakeUpstream } from '../helpers/fake-upstream.js';
import { cardsBody, deleteByPrefix, redisUrl } from '../helpers/harness.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { freePort } from '../helpers/free-port.js';
import { startPrivateRedis } from '../helpers/private-redis.js';
import { keyLayout } from '../../src/redis/keys.js';
import { DEFAULT_ERROR_COMPONENTS } from '../../src/config/card-policy.js';
import { signBody } from '../../src/core/signature.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/cli.js');

let dir: string;
let children: Spawned[] = [];
let upstreams: FakeUpstream[] = [];
let prefixes: string[] = [];
let tcps: TcpProxy[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardproxy-processes-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

afterEach(async () => {
  await Promise.all(children.map((c) => c.kill('SIGKILL')));
  children = [];
  await Promise.all(upstreams.map((u) => u.close()));
  upstreams = [];
  await Promise.all(tcps.map((t) => t.close()));
  tcps = [];
  const redis = new Redis(redisUrl());
  try {
    for (const prefix of prefixes) await deleteByPrefix(redis, prefix);
  } finally {
    redis.disconnect();
    prefixes = [];
  }
});

// ---------------------------------------------------------------------------------------------
// Helpers

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Spawned {
  readonly child: ChildProcess;
  readonly name: string;
  readonly exited: Promise<Exit>;
  readonly exit: Exit | undefined;
  stdout(): string;
  stderr(): string;
  /** Both streams, for failure messages. */
  output(): string;
  /** Sends `signal` (if still running) and waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<Exit>;
}

/**
 * Runs `node dist/cli.js ...args`. The environment is this process's minus the variables the CLI
 * reads (REDIS_URL, CARDPROXY_CONFIG, PORT), plus `env`: each test says what it wants.
 */
function cli(name: string, args: string[], env: Record<string, string> = {}): Spawned {
  const base = { ...process.env };
  delete base.REDIS_URL;
  delete base.CARDPROXY_CONFIG;
  delete base.PORT;
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((done) =>
    child.once('close', (code, signal) => {
      exit = { code, signal };
      done(exit);
    }),
  );
  const spawned: Spawned = {
    child,
    name,
    exited,
    get exit() {
      return exit;
    },
    stdout: () => Buffer.concat(out).toString('utf8'),
    stderr: () => Buffer.concat(err).toString('utf8'),
    output: () => `--- ${name} (${args.join(' ')}) stdout:\n${spawned.stdout()}\n--- stderr:\n${spawned.stderr()}`,
    async kill(signal) {
      if (exit === undefined) child.kill(signal);
      return exited;
    },
  };
  children.push(spawned);
  return spawned;
}

/** Runs a command to its end (bounded), for the commands that exit by themselves. */
async function run(name: string, args: string[], env: Record<string, string> = {}, timeoutMs = 10_000): Promise<Exit & { stdout: string; stderr: string; output: string }> {
  const p = cli(name, args, env);
  const exit = await within(timeoutMs, `${name} to exit`, p.exited, p);
  return { ...exit, stdout: p.stdout(), stderr: p.stderr(), output: p.output() };
}

async function within<T>(ms: number, what: string, work: Promise<T>, ...processes: Spawned[]): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms\n${processes.map((p) => p.output()).join('\n')}`)), ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port nothing listens on right now (a process must be reachable, so listen.port 0 will not do). */

interface Node {
  readonly port: number;
  readonly base: string;
}

/** A valid config with a unique key prefix and fast stalled-job recovery; `extra` is merged on top. */
async function configFor(upstreamUrl: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown> & { listen: { host: string; port: number }; redis: { url: string; keyPrefix: string } }> {
  const keyPrefix = `test-proc-${randomUUID().slice(0, 8)}`;
  prefixes.push(keyPrefix);
  return {
    listen: { host: '127.0.0.1', port: await freePort() },
    redis: { url: redisUrl(), keyPrefix },
    budgetMs: 1000,
    upstreams: { legacy: { url: upstreamUrl, timeoutMs: 30_000, concurrency: 4, retryDelayMs: 200 } },
    cards: { alpha: { upstream: 'legacy' }, beta: { upstream: 'legacy' } },
    worker: { lockDurationMs: 1000, stalledIntervalMs: 1000 },
    ...extra,
  };
}

function writeConfig(config: unknown): string {
  const file = join(dir, `config-${randomUUID().slice(0, 8)}.json`);
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return file;
}

/** The same config on another port (one port per process). */
async function onNewPort<T extends { listen: { host: string; port: number } }>(config: T): Promise<T> {
  return { ...config, listen: { ...config.listen, port: await freePort() } };
}

/** Starts `cardproxy <role>` and waits until its `/healthz` answers (and `/readyz`, unless told not to). */
async function startNode(role: 'start' | 'serve' | 'worker', config: { listen: { port: number } }, opts: { ready?: boolean; name?: string } = {}): Promise<Node & { proc: Spawned }> {
  const file = writeConfig(config);
  const proc = cli(opts.name ?? role, [role, '--config', file]);
  const node = { port: config.listen.port, base: `http://127.0.0.1:${config.listen.port}` };
  await waitHttp(proc, node, opts.ready === false ? '/healthz' : '/readyz');
  return { ...node, proc };
}

/** Polls `path` until it answers 200; fails early (with the output) if the process exits. */
async function waitHttp(proc: Spawned, node: Node, path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exit) throw new Error(`${proc.name} exited (${JSON.stringify(proc.exit)}) before ${path} answered 200\n${proc.output()}`);
    try {
      const res = await fetch(node.base + path, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${proc.name}: ${path} did not answer 200 within ${timeoutMs} ms\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function postCards(node: Node, body: unknown): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${node.base}/cards`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_proc' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, ms: performance.now() - started };
}

async function getStatus(node: Node, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(node.base + path, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

/** A sample of the Prometheus text (0 when absent). */
function sample(metrics: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const have = line.slice(name.length + 1, line.indexOf('}')).split(',');
    if (want.every((w) => have.includes(w))) return Number(line.slice(line.indexOf('}') + 1).trim());
  }
  return 0;
}

async function upstream(...args: Parameters<typeof startFakeUpstream>): Promise<FakeUpstream> {
  const u = await startFakeUpstream(...args);
  upstreams.push(u);
  return u;
}

async function until<T>(check: () => T | Promise<T>, timeoutMs: number, what: string, ...processes: Spawned[]): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${processes.map((p) => p.output()).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const byKey = (body: { cards: Array<{ key: string }> }) => Object.fromEntries(body.cards.map((c) => [c.key, c])) as Record<string, any>;

// ---------------------------------------------------------------------------------------------

describe('workers', () => {
  it('recovers the job of a worker killed mid-job in another worker process; a serve process then answers from the cache', async () => {
    // The first call is held until the client goes away; later calls answer at once.
    const legacy = await upstream((call) => (legacy.calls.length === 1 ? { delayMs: 60_000, body: cardsReply(call) } : { body: cardsReply(call) }));
    const worker = { lockDurationMs: 1000, stalledIntervalMs: 1000 };
    const config = await configFor(legacy.url, { worker });
    const server = await startNode('serve', config);
    const first = await startNode('worker', await onNewPort(config), { name: 'worker-1' });

    const body = cardsBody(['alpha', 'beta'], 'c_killed'); // two keys: never a manual reload
    const cold = await postCards(server, body);
    expect(cold.status).toBe(200);
    expect(cold.body.cards.map((c: any) => textOf(c))).toEqual(['Loading…', 'Loading…']);
    await legacy.waitForCalls(1);
    expect(legacy.inFlight).toBe(1);

    const killed = await first.proc.kill('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    const killedAt = Date.now();
    const second = await startNode('worker', await onNewPort(config), { name: 'worker-2' });
    await within(10_000, 'the second worker to call the upstream again', legacy.waitForCalls(2, 10_000), second.proc, server.proc);
    expect(legacy.calls[1]!.keys.sort()).toEqual(['alpha', 'beta']);
    expect(legacy.calls[1]!.customerId).toBe('c_killed');
    const recoveredMs = Date.now() - killedAt;

    // The card lands: the serve process answers it from the cache, with no third call.
    const warm = await until(
      async () => {
        const res = await postCards(server, body);
        return res.body.cards.every((c: any) => textOf(c) === `${c.key} for c_killed`) && res;
      },
      5000,
      'the recovered card to be served',
      server.proc,
      second.proc,
    );
    expect(warm.status).toBe(200);
    const again = await postCards(server, body);
    expect(textOf(byKey(again.body).alpha)).toBe('alpha for c_killed');
    expect(legacy.calls.length, `upstream calls; the processes said:\n${[server.proc, second.proc].map((p) => p.output()).join('\n')}`).toBe(2);
    // It was the second worker that ran the job to its end.
    await until(() => /"msg":"refresh job"/.test(second.proc.stdout()), 5000, 'the second worker to log its job', second.proc);
    expect(second.proc.stdout()).toMatch(/"customerId":"c_killed"[^\n]*"outcome":"ok"/);
    const metrics = (await getStatus(server, '/metrics')).body;
    expect(sample(metrics, 'cardproxy_cards_served_total', { card_key: 'alpha', source: 'cache' })).toBeGreaterThanOrEqual(1);
    console.info(`killed worker: job recovered by the second worker ${recoveredMs} ms after SIGKILL (lockDurationMs ${worker.lockDurationMs}, stalledIntervalMs ${worker.stalledIntervalMs})`);
  });

  it('a job whose workers die twice is failed by BullMQ: its waiting request gets the error card at once, its markers go, the next request refreshes anew', async () => {
    // The first two calls hang until their worker dies; later calls answer at once.
    const legacy = await upstream((call) => (legacy.calls.length <= 2 ? { delayMs: 60_000, body: cardsReply(call) } : { body: cardsReply(call) }));
    const config = await configFor(legacy.url, { budgetMs: 12_000 });
    const server = await startNode('serve', config);
    const body = cardsBody(['alpha', 'beta'], 'c_twice');
    const inflight = keyLayout(config.redis.keyPrefix).inflight({ workspaceId: 'w_proc', customerId: 'c_twice', threadId: null, cardKey: 'alpha' });
    const redis = new Redis(redisUrl());
    try {
      let worker = await startNode('worker', await onNewPort(config), { name: 'worker-1' });
      void postCards(server, body).catch(() => {}); // answered with placeholders once its budget is over
      for (const calls of [1, 2]) {
        await within(10_000, `upstream call ${calls}`, legacy.waitForCalls(calls, 10_000), worker.proc, server.proc);
        await worker.proc.kill('SIGKILL');
        if (calls === 1) worker = await startNode('worker', await onNewPort(config), { name: 'worker-2' });
      }
      // The job has stalled twice: the next worker to take it fails it without running it.
      expect(await redis.get(inflight)).not.toBeNull();
      const waiter = postCards(server, body);
      await new Promise((r) => setTimeout(r, 300)); // the request joins the job before it is failed
      const third = await startNode('worker', await onNewPort(config), { name: 'worker-3' });
      const answered = await within(13_000, 'the waiting request', waiter, third.proc, server.proc);
      // Told at once, it falls back to the error card (no stale copy held), well inside its budget.
      expect(answered.status).toBe(200);
      expect(answered.ms).toBeLessThan(11_000);
      expect(answered.body.cards.map((c: any) => textOf(c))).toEqual(Array(2).fill(textOf({ components: DEFAULT_ERROR_COMPONENTS })));
      expect(await redis.get(inflight)).toBeNull();
      const failures = (await redis.xrange(`${config.redis.keyPrefix}:events`, '-', '+')).filter(([, f]) => f[1] === 'card.refresh_failed');
      expect(failures).toHaveLength(2);
      expect(JSON.parse(failures[0]![1][3]!)).toMatchObject({ errorKind: 'retriable', detail: 'refresh job ended without an outcome: job stalled more than allowable limit', status: null });
      await until(() => /refresh job ended without an outcome/.test(third.proc.stdout()), 5000, 'the failure to be logged', third.proc);
      // The next request is not joined to the dead job: a fresh refresh calls the upstream and lands.
      const next = await postCards(server, body);
      expect(next.body.cards.map((c: any) => textOf(c)).sort()).toEqual(['alpha for c_twice', 'beta for c_twice']);
      expect(legacy.calls).toHaveLength(3);
      console.info(`double crash: waiting request answered with the error card ${Math.round(answered.ms)} ms after it arrived (budget 12000 ms)`);
    } finally {
      redis.disconnect();
    }
  });

  it('on the default lock and stalled intervals, a refresh whose worker is killed runs again within 30 s', async () => {
    const legacy = await upstream((call) => (legacy.calls.length === 1 ? { delayMs: 60_000, body: cardsReply(call) } : { body: cardsReply(call) }));
    const { worker: _small, ...config } = await configFor(legacy.url);
    const server = await startNode('serve', config);
    const first = await startNode('worker', await onNewPort(config), { name: 'worker-1' });
    void postCards(server, cardsBody(["alpha", "beta"], "c_defaults")).catch(() => {});
    await legacy.waitForCalls(1);
    const second = await startNode('worker', await onNewPort(config), { name: 'worker-2' });
    await new Promise((r) => setTimeout(r, Math.max(0, legacy.calls[0]!.at + 1500 - Date.now())));
    await first.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await within(30_000, 'the job to run again', legacy.waitForCalls(2, 30_000), second.proc, server.proc);
    const recoveredMs = Date.now() - killedAt;
    expect(recoveredMs).toBeLessThan(30_000);
    console.info(`default worker settings: a killed worker's refresh ran again ${recoveredMs} ms after SIGKILL`);
  }, 45_000);

  it('`serve` alone enqueues but does not process jobs; a `worker` then does', async () => {
    const legacy = await upstream();
    // A small budget means a small Redis command time-out (budget / 5). It once made BullMQ's queue
    // set-up time out during start-up, after which the process never enqueued again: every cold
    // card became a direct upstream call. Under heavy load a single request may still fall back to
    // a direct call, so this asks for new customers until one is queued (before the fix: never).
    const config = await configFor(legacy.url, { budgetMs: 300 });
    const server = await startNode('serve', config);
    let n = 0;
    const customer = await until(
      async () => {
        const id = `c_queued_${n++}`;
        const res = await postCards(server, cardsBody(['alpha', 'beta'], id));
        expect(res.status).toBe(200);
        return res.body.cards.every((c: any) => textOf(c) === 'Loading…') && id;
      },
      5000,
      'a request whose refresh is queued (placeholders, not a direct upstream call)',
      server.proc,
    );
    if (n > 1) console.info(`serve with budgetMs 300: ${n - 1} request(s) fell back to direct calls before one was queued`);
    // The job is on the queue, waiting, and stays so: nobody in the serve process takes it.
    const waiting = async () => sample((await getStatus(server, '/metrics')).body, 'cardproxy_refresh_jobs', { upstream: 'legacy', state: 'waiting' });
    await until(async () => (await waiting()) === 1, 5000, 'the refresh job to be waiting', server.proc);
    await new Promise((r) => setTimeout(r, 1000));
    expect(legacy.calls.filter((c) => c.customerId === customer)).toHaveLength(0);
    expect(await waiting()).toBe(1);

    const worker = await startNode('worker', await onNewPort(config));
    await until(() => legacy.calls.some((c) => c.customerId === customer), 10_000, 'the worker to take the job', worker.proc);
    await until(
      async () => (await postCards(server, cardsBody(['alpha', 'beta'], customer))).body.cards.every((c: any) => textOf(c) === `${c.key} for ${customer}`),
      5000,
      'the card to land',
      server.proc,
      worker.proc,
    );
    expect(legacy.calls.filter((c) => c.customerId === customer)).toHaveLength(1);
  });

  it('`worker` alone answers /healthz, /readyz and /metrics on its port, and 404 on /cards', async () => {
    const legacy = await upstream();
    const worker = await startNode('worker', await configFor(legacy.url));
    expect((await getStatus(worker, '/healthz')).status).toBe(200);
    expect((await getStatus(worker, '/readyz')).status).toBe(200);
    const metrics = await getStatus(worker, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('cardproxy_refresh_jobs');
    const cards = await postCards(worker, cardsBody(['alpha']));
    expect(cards.status).toBe(404);
    expect(cards.body).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    expect(legacy.calls).toHaveLength(0);
  });
});

describe('requests read in one turn', () => {
  it('are answered together, each with its own answer: warm, cold or refused', async () => {
    const SECRET = 'turn-secret';
    const legacy = await upstream();
    const node = await startNode('start', await configFor(legacy.url, { plain: { signingSecrets: [SECRET] } }));
    const request = (customer: string, signature?: string) => {
      const body = JSON.stringify(cardsBody(['alpha', 'beta'], customer));
      const headers = { 'content-type': 'application/json', 'plain-workspace-id': 'w_proc', 'plain-request-signature': signature ?? signBody(SECRET, body) };
      return { body, headers };
    };
    let fetched = 0;
    const viaFetch = async (customer: string) => {
      fetched++;
      const res = await fetch(`${node.base}/cards`, { method: 'POST', ...request(customer) });
      await res.arrayBuffer();
      return res;
    };
    const warm = Array.from({ length: 8 }, (_, i) => `c_turn_${i}`);
    for (const customer of warm) expect((await viaFetch(customer)).status).toBe(200);
    await until(async () => (await viaFetch(warm.at(-1)!)).headers.get('cardproxy-cache') === 'alpha=fresh; beta=fresh', 5000, 'warm cards', node.proc);
    const cases = [
      ...warm.map((customer) => ({ customer, request: request(customer), status: 200, cache: 'alpha=fresh; beta=fresh' })),
      ...[0, 1, 2].map((i) => ({ customer: `c_turn_cold_${i}`, request: request(`c_turn_cold_${i}`), status: 200, cache: 'alpha=refreshed; beta=refreshed' })),
      ...warm.slice(0, 4).map((customer) => ({ customer, request: request(customer, 'ab'.repeat(32)), status: 401, cache: undefined })),
    ];
    // Interleaved (7 and 15 are coprime: a permutation), so neighbours differ in kind.
    const sent = cases.map((_, i) => cases[(i * 7) % cases.length]!);
    // One connection per request, open before the process is stopped.
    const sockets = await Promise.all(
      sent.map(() => new Promise<Socket>((resolve, reject) => {
        const socket = connect(node.port, '127.0.0.1', () => resolve(socket));
        socket.once('error', reject);
      })),
    );
    const requests: ClientRequest[] = [];
    const answered = Promise.all(
      sent.map((c, i) => new Promise<{ status: number; cache: string | string[] | undefined; text: string }>((resolve, reject) => {
        const req = httpRequest({ createConnection: () => sockets[i]!, method: 'POST', path: '/cards', headers: c.request.headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode!, cache: res.headers['cardproxy-cache'], text: Buffer.concat(chunks).toString('utf8') }));
        });
        req.on('error', reject);
        requests.push(req);
      })),
    );
    const answeredLines = () =>
      node.proc
        .stdout()
        .split('\n')
        .filter((line) => line.includes('"msg":"cards answered"'))
        .map((line) => JSON.parse(line) as { customerId: string; reqId: string });
    // Every earlier request's line is out (lines are held up to 10 ms), so what follows is the turn's.
    await until(() => answeredLines().length === fetched, 5000, 'the earlier log lines', node.proc);
    // Stopped, the process cannot read any of them until all have arrived: one turn reads them all.
    node.proc.child.kill('SIGSTOP');
    try {
      requests.forEach((req, i) => req.end(sent[i]!.request.body));
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      node.proc.child.kill('SIGCONT');
    }
    const answers = await within(10_000, 'the answers', answered, node.proc);
    answers.forEach((answer, i) => {
      const c = sent[i]!;
      expect(answer.status, c.customer).toBe(c.status);
      if (c.status === 200) {
        expect(answer.cache, c.customer).toBe(c.cache);
        expect(JSON.parse(answer.text).cards.map(textOf), c.customer).toEqual([`alpha for ${c.customer}`, `beta for ${c.customer}`]);
      } else {
        expect(JSON.parse(answer.text).error, c.customer).toBe('invalid_signature');
      }
    });
    // One "cards answered" line per answered request, each with its own request id.
    await until(() => answeredLines().length >= fetched + 11, 5000, 'the log lines', node.proc);
    const lines = answeredLines().slice(fetched);
    expect(lines.map((l) => l.customerId).sort()).toEqual(sent.filter((c) => c.status === 200).map((c) => c.customer).sort());
    expect(new Set(lines.map((l) => l.reqId)).size).toBe(11);
  });
});

describe('secrets', () => {
  it('logs no Redis password, old or new, when the password is rotated under a running process', async () => {
    const OLD = 'old-redis-password-8f3a91';
    const NEW = 'new-redis-password-2b7c44';
    const redis = await startPrivateRedis(['--requirepass', OLD]);
    try {
      const legacy = await upstream();
      const config = await configFor(legacy.url);
      config.redis.url = redis.url(OLD);
      const node = await startNode('start', config);
      expect((await postCards(node, cardsBody(['alpha', 'beta'], 'c_rotate'))).status).toBe(200);

      // Rotate: new password, every connection dropped; the process reconnects with the old one.
      const admin = redis.client(OLD);
      await admin.config('SET', 'requirepass', NEW);
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal').catch(() => {});
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub').catch(() => {});
      admin.disconnect();
      await until(() => /WRONGPASS/.test(node.proc.stdout()), 10_000, 'the rejected password to be logged', node.proc);
      await until(async () => (await getStatus(node, '/readyz')).status === 503, 10_000, '/readyz to answer 503', node.proc);
      expect((await postCards(node, cardsBody(['alpha', 'beta'], 'c_rotated'))).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1500)); // let every connection retry and log

      const lines = `${node.proc.stdout()}\n${node.proc.stderr()}`.split('\n').filter(Boolean);
      expect(lines.length).toBeGreaterThan(3);
      const leaking = lines.filter((line) => line.includes(OLD) || line.includes(NEW) || line.includes(encodeURIComponent(OLD)));
      expect(leaking).toEqual([]);
    } finally {
      await redis.stop();
    }
  });
});

describe('log stream', () => {
  it("writes only JSON lines, and says once that Redis evicts, instead of BullMQ's plain-text notices", async () => {
    const redis = await startPrivateRedis(['--maxmemory-policy', 'allkeys-lru']);
    try {
      const legacy = await upstream();
      const config = await configFor(legacy.url);
      config.redis.url = redis.url();
      const node = await startNode('start', config);
      expect((await postCards(node, cardsBody(['alpha', 'beta'], 'c_json'))).status).toBe(200);
      await until(() => /maxmemory-policy is allkeys-lru/.test(node.proc.stdout()), 5000, 'the eviction warning', node.proc);
      const lines = node.proc.stdout().split('\n').filter(Boolean);
      expect(lines.filter((line) => { try { JSON.parse(line); return false; } catch { return true; } })).toEqual([]);
      expect(lines.filter((line) => line.includes('maxmemory-policy is allkeys-lru'))).toHaveLength(1);
      expect(`${node.proc.stdout()}${node.proc.stderr()}`).not.toContain('IMPORTANT!');
    } finally {
      await redis.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('answers the in-flight /cards request with its data on SIGTERM, then exits 0', async () => {
    const legacy = await upstream((call) => ({ body: cardsReply(call), delayMs: 800 }));
    const node = await startNode('start', await configFor(legacy.url, { budgetMs: 3000 }));
    const inFlight = postCards(node, cardsBody(['alpha', 'beta'], 'c_sigterm'));
    await legacy.waitForCalls(1);

    const signalledAt = performance.now();
    node.proc.child.kill('SIGTERM');
    const res = await within(5000, 'the in-flight request', inFlight, node.proc);
    const answeredMs = performance.now() - signalledAt;
    expect(res.status).toBe(200);
    expect(res.body.cards.map((c: any) => textOf(c)).sort()).toEqual(['alpha for c_sigterm', 'beta for c_sigterm']);
    const exit = await within(5000, 'the process to exit after SIGTERM', node.proc.exited, node.proc);
    const exitMs = performance.now() - signalledAt;
    expect(exit, node.proc.output()).toEqual({ code: 0, signal: null });
    expect(legacy.calls).toHaveLength(1);
    console.info(`SIGTERM: in-flight request answered ${Math.round(answeredMs)} ms after the signal, process exited 0 after ${Math.round(exitMs)} ms`);
  });

  it('exits 0 on SIGTERM while Redis is unreachable', async () => {
    const legacy = await upstream();
    const target = new URL(redisUrl());
    const tcp = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    tcps.push(tcp);
    const config = await configFor(legacy.url);
    config.redis.url = tcp.url(redisUrl());
    const node = await startNode('start', config);
    await tcp.cut();
    await until(async () => (await getStatus(node, '/readyz')).status === 503, 5000, '/readyz 503', node.proc);
    const res = await postCards(node, cardsBody(['alpha', 'beta'], 'c_outage'));
    expect(res.status).toBe(200);

    const signalledAt = performance.now();
    node.proc.child.kill('SIGTERM');
    const exit = await within(5000, 'the process to exit after SIGTERM during the outage', node.proc.exited, node.proc);
    expect(exit, node.proc.output()).toEqual({ code: 0, signal: null });
    console.info(`SIGTERM during a Redis outage: exited 0 after ${Math.round(performance.now() - signalledAt)} ms`);
  });
});

describe('command line and configuration', () => {
  it('check-config: exit 0 for the bundled config, non-zero naming each bad field by its path', async () => {
    const ok = await run('check-config', ['check-config', join(ROOT, 'config/default.json')]);
    expect(ok.code, ok.output).toBe(0);

    const bad = writeConfig({
      listen: { port: 'eighty' },
      budgetMs: 50,
      upstreams: { x: { url: 'ftp://legacy.internal/cards', concurrency: 0 } },
      cards: { y: { upstream: 'missing' } },
      surprise: true,
    });
    const res = await run('check-config', ['check-config', bad]);
    expect(res.code, res.output).not.toBe(0);
    expect(res.code).not.toBeNull();
    for (const field of ['listen.port', 'budgetMs', 'upstreams.x.url', 'upstreams.x.concurrency', 'cards.y.upstream', 'surprise']) {
      expect(res.stderr, `stderr names ${field}`).toMatch(new RegExp(`(^|\\W)${field.replace(/\./g, '\\.')}\\b`, 'm'));
    }
  });

  it('start: an invalid config stops the process with a non-zero exit naming the field; no config at all is a usage error', async () => {
    const legacy = await upstream();
    const invalid = writeConfig({ ...(await configFor(legacy.url)), budgetMs: 20_000 });
    const res = await run('start', ['start', '--config', invalid]);
    expect(res.code, res.output).not.toBe(0);
    expect(res.code).not.toBeNull();
    expect(res.stderr).toMatch(/budgetMs/);

    const missing = await run('start', ['start']);
    expect(missing.code, missing.output).not.toBe(0);
    expect(missing.code).not.toBeNull();
    expect(missing.stderr).toMatch(/--config/);
    expect(missing.stderr).toMatch(/Usage/i);
  });

  it('CARDPROXY_CONFIG replaces --config, and REDIS_URL overrides redis.url', async () => {
    const legacy = await upstream();
    // redis.url points at a port where nothing listens; REDIS_URL points at the real Redis.
    const config = await configFor(legacy.url);
    config.redis.url = `redis://127.0.0.1:${await freePort()}`;
    const file = writeConfig(config);
    const proc = cli('start (env)', ['start'], { CARDPROXY_CONFIG: file, REDIS_URL: redisUrl() });
    const node = { port: config.listen.port, base: `http://127.0.0.1:${config.listen.port}` };
    await waitHttp(proc, node, '/readyz');
    const res = await postCards(node, cardsBody(['alpha', 'beta'], 'c_env'));
    expect(res.status).toBe(200);
    expect(res.body.cards.map((c: any) => textOf(c)).sort()).toEqual(['alpha for c_env', 'beta for c_env']);

    // The control: without REDIS_URL the same settings reach no Redis (the process starts all the same).
    const deadConfig = await onNewPort(config);
    const dead = cli('start (no REDIS_URL)', ['start'], { CARDPROXY_CONFIG: writeConfig(deadConfig) });
    const deadNode = { port: deadConfig.listen.port, base: `http://127.0.0.1:${deadConfig.listen.port}` };
    await waitHttp(dead, deadNode, '/healthz');
    expect((await getStatus(deadNode, '/readyz')).status).toBe(503);
  });
});
