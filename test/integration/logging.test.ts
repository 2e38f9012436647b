/**
 * The structured logs of the issue "Observability": one `cards answered` line per `/cards`
 * request (request id, workspace, customer id, each key's outcome and duration; never the email),
 * one line per refresh job from the worker's child logger, secrets redacted (signing secrets, the
 * admin token, upstream header values, credentials in an upstream URL), and `LOG_LEVEL` honoured
 * by `createLogger` and by the real CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, redactUrlCredentials } from '../../src/observability/logger.js';
import { cardsReply, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, deleteByPrefix, eventually, LogSink, postCards, redisUrl, startTestProxy, testConfig } from '../helpers/harness.js';
import { freePort } from '../helpers/free-port.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const sign = (secret: string, raw: string): string => createHmac('sha256', secret).update(raw).digest('hex');

let legacy: FakeUpstream;
beforeAll(async () => {
  legacy = await startFakeUpstream((call) => (call.customerId === 'c_log_404' ? { status: 404 } : { body: cardsReply(call) }));
});
afterEach(cleanupProxies);
afterAll(async () => {
  await legacy.close();
});

interface KeyOutcomeLine {
  key: string;
  result: string;
  source: string | null;
  ms: number;
}

describe('request lines', () => {
  it('writes one "cards answered" line per /cards request with request id, workspace, customer and each key\'s outcome, never the email', async () => {
    const proxy = await startTestProxy(testConfig(legacy.url));
    expect((await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_log_1'))).status).toBe(200);
    expect((await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_log_1'), { 'plain-workspace-id': 'w_other' })).status).toBe(200);
    expect((await postCards(proxy, cardsBody(['alpha', 'beta', 'nope'], 'c_log_1'))).status).toBe(200);
    // Rejected requests are answered, not "cards answered".
    expect((await postCards(proxy, '{')).status).toBe(400);
    expect((await postCards(proxy, cardsBody(['alpha'], 'c_log_1'), { 'plain-workspace-id': '' })).status).toBe(400);

    const lines = proxy.logs.find('cards answered');
    expect(lines).toHaveLength(3);
    const reqIds = lines.map((l) => l.reqId);
    for (const id of reqIds) expect(typeof id === 'string' && id.length > 0, String(id)).toBe(true);
    expect(new Set(reqIds).size).toBe(3);
    for (const line of lines) {
      expect(line).toMatchObject({ level: 30, customerId: 'c_log_1', service: 'cardproxy' });
      expect(JSON.stringify(line)).not.toContain('@example.com');
      expect(line).not.toHaveProperty('email');
    }
    expect(lines.map((l) => l.workspaceId)).toEqual(['w_test', 'w_other', 'w_test']);

    const outcomes = lines.map((l) => l.keys as KeyOutcomeLine[]);
    for (const o of outcomes.flat()) expect(Number.isFinite(o.ms) && o.ms >= 0, JSON.stringify(o)).toBe(true);
    const summary = (o: KeyOutcomeLine[]) => o.map(({ key, result, source }) => [key, result, source]);
    expect(summary(outcomes[0]!)).toEqual([
      ['alpha', 'miss', 'refreshed'],
      ['beta', 'miss', 'refreshed'],
    ]);
    // Another workspace is another cache entry.
    expect(summary(outcomes[1]!)).toEqual([
      ['alpha', 'miss', 'refreshed'],
      ['beta', 'miss', 'refreshed'],
    ]);
    expect(summary(outcomes[2]!).sort()).toEqual([
      ['alpha', 'fresh', 'cache'],
      ['beta', 'fresh', 'cache'],
      ['nope', 'unknown', null],
    ]);
    expect(proxy.logs.raw.join('\n')).not.toContain('@example.com');
  });
});

describe('refresh job lines', () => {
  it('writes one line per refresh job from the worker component: job id, upstream, keys, outcome, duration', async () => {
    const proxy = await startTestProxy(testConfig(legacy.url, { budgetMs: 3000 }));
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_log_job'));
    await postCards(proxy, cardsBody(['alpha'], 'c_log_404'));
    await eventually(() => proxy.logs.find('refresh job failed').length === 1, 3000, 'the failed job line');

    const ok = proxy.logs.find('refresh job');
    expect(ok).toHaveLength(1);
    expect(ok[0]).toMatchObject({
      level: 30,
      component: 'refresh-worker',
      upstream: 'legacy',
      keys: ['alpha', 'beta'],
      customerId: 'c_log_job',
      outcome: 'ok',
      attempt: 1,
    });
    const failed = proxy.logs.find('refresh job failed');
    expect(failed[0]).toMatchObject({
      level: 40,
      component: 'refresh-worker',
      upstream: 'legacy',
      keys: ['alpha'],
      customerId: 'c_log_404',
      outcome: 'integration_error',
      status: 404,
    });
    for (const line of [...ok, ...failed]) {
      expect(typeof line.jobId === 'string' && line.jobId.length > 0).toBe(true);
      expect(typeof line.durationMs === 'number' && line.durationMs >= 0).toBe(true);
      // Exactly one line for each job.
      expect(proxy.logs.lines.filter((l) => l.jobId === line.jobId)).toHaveLength(1);
    }
    expect(ok[0]!.jobId).not.toBe(failed[0]!.jobId);
    expect(proxy.logs.raw.join('\n')).not.toContain('@example.com');
  });
});

describe('secrets', () => {
  it('keeps signing secrets, the admin token and upstream header values out of every line', async () => {
    // (Credentials in an upstream URL are refused by the config schema; see test/config.)
    const secrets = ['plain-s1gning', 'adm1n-tok3n', 'Bearer up-auth-s3cret', 'up-auth-s3cret', 'k3y-header-value', 'up-s1gning'];
    const config = testConfig(legacy.url, {
      budgetMs: 3000,
      plain: { signingSecrets: ['plain-s1gning'] },
      admin: { token: 'adm1n-tok3n' },
      upstreams: {
        legacy: {
          url: legacy.url,
          headers: { Authorization: 'Bearer up-auth-s3cret', 'X-Api-Key': 'k3y-header-value' },
          signingSecret: 'up-s1gning',
          retries: 0,
        },
      },
      cards: { alpha: { upstream: 'legacy' } },
    });
    const proxy = await startTestProxy(config);
    const raw = JSON.stringify(cardsBody(['alpha'], 'c_log_secret'));
    const res = await postCards(proxy, raw, { 'plain-request-signature': sign('plain-s1gning', raw), authorization: 'Bearer adm1n-tok3n' });
    expect(res.status).toBe(200);
    expect((await postCards(proxy, raw, { 'plain-request-signature': sign('up-s1gning', raw) })).status).toBe(401);
    await eventually(() => proxy.logs.find('refresh job').length > 0, 3000, 'the refresh job line');

    // The secrets were in play: the legacy upstream got its header values.
    const call = legacy.calls.find((c) => c.customerId === 'c_log_secret')!;
    expect(call.headers['x-api-key']).toBe('k3y-header-value');
    expect(call.headers.authorization).toBe('Bearer up-auth-s3cret');

    const text = proxy.logs.raw.join('\n');
    for (const secret of secrets) expect(text, `"${secret}" is in the logs`).not.toContain(secret);
  });

  it('redacts credentials of any URL in a line, and leaves other @ alone', () => {
    expect(redactUrlCredentials('"detail":"cannot fetch http://user:pa55@h:80/cards"')).toBe('"detail":"cannot fetch http://[redacted]@h:80/cards"');
    expect(redactUrlCredentials('redis://:s3cret@redis:6379/0 and rediss://u:p@x')).toBe('redis://[redacted]@redis:6379/0 and rediss://[redacted]@x');
    expect(redactUrlCredentials('https://token@api.example/x')).toBe('https://[redacted]@api.example/x');
    expect(redactUrlCredentials('http://host/path?email=a@b.example and c@d.example')).toBe('http://host/path?email=a@b.example and c@d.example');
  });
});

describe('errors carrying secrets', () => {
  it('keeps only the name of a failed Redis command on a logged error, also on the errors it wraps', () => {
    const sink = new LogSink();
    const log = createLogger({ destination: sink });
    const wrongpass = Object.assign(new Error('WRONGPASS invalid username-password pair'), { command: { name: 'auth', args: ['s3cret-password'] } });
    const wrapper = Object.assign(new Error('could not connect', { cause: wrongpass }), { previousErrors: [wrongpass] });
    log.warn({ err: wrapper }, 'redis connection error');
    expect(sink.raw.join('\n')).not.toContain('s3cret-password');
    const err = sink.lines[0]!.err as any;
    expect(err.previousErrors[0].command).toEqual({ name: 'auth' });
    // The error object itself is left untouched.
    expect(wrongpass.command.args).toEqual(['s3cret-password']);
  });

  it('scrubs the secrets it is given from every line, whatever field they hide in', () => {
    const sink = new LogSink();
    const log = createLogger({ destination: sink, secrets: ['Bearer upstream-token-42', 'upstream-token-42', 'short'] });
    log.warn({ detail: 'upstream said: bad token upstream-token-42', nested: { h: 'Bearer upstream-token-42' } }, 'x short');
    expect(sink.raw[0]).not.toContain('upstream-token-42');
    expect(sink.lines[0]!.detail).toBe('upstream said: bad token [redacted]');
    expect(sink.lines[0]!.msg).toBe('x short'); // too short to be told from ordinary words
  });
});

describe('LOG_LEVEL', () => {
  it('sets the level of createLogger when none is given', () => {
    const previous = process.env.LOG_LEVEL;
    try {
      process.env.LOG_LEVEL = 'warn';
      const sink = new LogSink();
      const log = createLogger({ destination: sink });
      expect(log.level).toBe('warn');
      log.info('not written');
      log.child({ component: 'x' }).info('not written either');
      log.warn('written');
      expect(sink.lines.map((l) => l.msg)).toEqual(['written']);

      process.env.LOG_LEVEL = 'debug';
      expect(createLogger({ destination: new LogSink() }).level).toBe('debug');
      delete process.env.LOG_LEVEL;
      expect(createLogger({ destination: new LogSink() }).level).toBe('info');
      // An explicit level wins over the environment.
      process.env.LOG_LEVEL = 'error';
      expect(createLogger({ level: 'debug', destination: new LogSink() }).level).toBe('debug');
    } finally {
      if (previous === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = previous;
    }
  });

  it('is honoured by `cardproxy start`: with LOG_LEVEL=warn no info line is written, without it they are', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cardproxy-log-level-'));
    const prefixes: string[] = [];
    const children: ChildProcess[] = [];
    try {
      const run = async (level: string | undefined) => {
        // A key prefix of its own, so that the other process' worker does not take its jobs.
        const prefix = `test-${randomUUID().slice(0, 8)}`;
        prefixes.push(prefix);
        const configFile = join(dir, `${prefix}.json`);
        writeFileSync(
          configFile,
          JSON.stringify({
            listen: { host: '127.0.0.1', port: 0 },
            redis: { url: redisUrl(), keyPrefix: prefix },
            budgetMs: 2000,
            upstreams: { legacy: { url: legacy.url } },
            cards: { alpha: { upstream: 'legacy' } },
          }),
        );
        const port = await freePort();
        const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
        delete env.LOG_LEVEL;
        if (level) env.LOG_LEVEL = level;
        const child = spawn(process.execPath, ['dist/cli.js', 'start', '--config', configFile], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(child);
        let stdout = '';
        let stderr = '';
        child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
        child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        const base = `http://127.0.0.1:${port}`;
        await eventually(async () => (await fetch(`${base}/healthz`)).ok, 10_000, `cardproxy start (LOG_LEVEL=${level}) to answer; stderr: ${stderr}`);
        const answer = await fetch(`${base}/cards`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'plain-workspace-id': 'w_cli' },
          body: JSON.stringify(cardsBody(['alpha'], `c_cli_${level ?? 'default'}`)),
        });
        expect(answer.status).toBe(200);
        child.kill('SIGTERM');
        expect(await exited, stderr).toBe(0);
        return stdout
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as Record<string, unknown>);
      };
      const [quiet, normal] = await Promise.all([run('warn'), run(undefined)]);

      expect(quiet.filter((l) => (l.level as number) < 40), JSON.stringify(quiet)).toEqual([]);
      // Warnings still come through (no signing secret is configured).
      expect(quiet.some((l) => l.level === 40 && /signingSecrets/.test(String(l.msg)))).toBe(true);
      expect(normal.filter((l) => l.msg === 'cards answered')).toHaveLength(1);
      expect(normal.some((l) => l.msg === 'refresh job' && l.component === 'refresh-worker')).toBe(true);
      expect(normal.every((l) => (l.level as number) >= 30)).toBe(true);
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      const redis = new Redis(redisUrl());
      try {
        for (const prefix of prefixes) await deleteByPrefix(redis, prefix);
      } finally {
        redis.disconnect();
      }
    }
  });
});

