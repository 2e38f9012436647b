/**
 * The process's stdout log destination: lines are held for a few milliseconds and reach the file
 * descriptor together, in order; held lines survive `process.exit()` and never keep a process
 * alive; and past its bound it drops lines and counts them instead of holding them without end.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { cardsLineWriter, type CardsLine } from '../../src/observability/cards-line.js';
import { BatchedDestination } from '../../src/observability/log-destination.js';
import { eventually } from '../helpers/harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function tempFile(): { path: string; fd: number } {
  dir = mkdtempSync(join(tmpdir(), 'log-destination-'));
  const path = join(dir, 'out.log');
  return { path, fd: openSync(path, 'w') };
}

describe('BatchedDestination', () => {
  it('holds lines across turns of the event loop, then writes them in order', async () => {
    const { path, fd } = tempFile();
    const dest = new BatchedDestination({ fd, maxBufferedBytes: 1024 * 1024, holdMs: 300 });
    const lines = Array.from({ length: 50 }, (_, i) => `{"n":${i}}\n`);
    const started = performance.now();
    for (const line of lines) dest.write(line);
    await new Promise((resolve) => setImmediate(resolve));
    dest.write('{"n":"next turn"}\n');
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Nothing is written while the first line is held (unless this machine stalled past the hold)…
    if (performance.now() - started < 250) expect(readFileSync(path, 'utf8')).toBe('');
    // …and then both turns' lines, in order, once the hold ends.
    await eventually(() => expect(readFileSync(path, 'utf8')).toBe(`${lines.join('')}{"n":"next turn"}\n`));
    expect(dest.dropped).toBe(0);
    closeSync(fd);
  });

  it('hands over at once what reaches 64 KiB, without waiting for the hold to end', async () => {
    const { path, fd } = tempFile();
    const dest = new BatchedDestination({ fd, maxBufferedBytes: 1024 * 1024, holdMs: 60_000 });
    const line = `${'y'.repeat(1023)}\n`;
    for (let i = 0; i < 64; i++) dest.write(line);
    // Handed to the writer at once: written long before the minute's hold would end.
    await eventually(() => expect(readFileSync(path, 'utf8')).toBe(line.repeat(64)));
    // A line under the size is held (for a minute here) until flushed.
    dest.write('{"after":true}\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(readFileSync(path, 'utf8')).toBe(line.repeat(64));
    dest.flushSync();
    expect(readFileSync(path, 'utf8')).toBe(`${line.repeat(64)}{"after":true}\n`);
    closeSync(fd);
  });

  it('keeps lines in order and intact whatever their size and characters', async () => {
    const { path, fd } = tempFile();
    const dest = new BatchedDestination({ fd, maxBufferedBytes: 4 * 1024 * 1024, holdMs: 60_000 });
    const small = '{"name":"Zoë 🚀 Łódź"}\n';
    // Larger than the buffer lines are held in: written on its own, after the line held before it.
    const huge = `{"x":"${'é'.repeat(100_000)}"}\n`;
    // 90 KB of three-byte characters: held with the line before it, then handed over at once.
    const large = `{"y":"${'€'.repeat(30_000)}"}\n`;
    for (const line of [small, huge, small, large, small]) dest.write(line);
    dest.flush();
    await eventually(() => expect(readFileSync(path, 'utf8')).toBe(`${small}${huge}${small}${large}${small}`));
    expect(dest.dropped).toBe(0);
    closeSync(fd);
  });

  it('writes the line it still holds when the process ends on its own', () => {
    const script = `
      import { createLogger } from './dist/observability/logger.js';
      const log = createLogger({ level: 'info' });
      log.info({ last: true }, 'held at exit');
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 10_000 });
    expect(run.status).toBe(0);
    const seen = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { last?: boolean; msg: string });
    expect(seen).toEqual([expect.objectContaining({ last: true, msg: 'held at exit' })]);
  });

  it('writes what it holds synchronously on flushSync', () => {
    const { path, fd } = tempFile();
    const dest = new BatchedDestination({ fd, maxBufferedBytes: 1024 * 1024 });
    dest.write('a\n');
    dest.write('b\n');
    dest.flushSync();
    expect(readFileSync(path, 'utf8')).toBe('a\nb\n');
    closeSync(fd);
  });

  it('loses no line when the process exits in the turn that logged it', () => {
    const script = `
      import { createLogger } from './dist/observability/logger.js';
      const log = createLogger({ level: 'info' });
      for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
      process.exit(0);
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
    expect(run.status).toBe(0);
    const seen = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { i: number; msg: string });
    expect(seen).toHaveLength(2000);
    expect(seen.map((l) => l.i)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  });

  it('drops and counts the lines that would take it past its bound while a write is under way', async () => {
    const { path, fd } = tempFile();
    const dest = new BatchedDestination({ fd, maxBufferedBytes: 1000 });
    const line = `${'x'.repeat(99)}\n`;
    for (let i = 0; i < 6; i++) dest.write(line);
    // 600 bytes: under way to the file (asynchronously) once handed over.
    dest.flush();
    // 5 lines more would make 1100 bytes with the 600 under way: over 1000, dropped.
    for (let i = 0; i < 5; i++) dest.write(line);
    dest.flush();
    expect(dest.dropped).toBe(5);
    // 3 lines fit (900 bytes).
    for (let i = 0; i < 3; i++) dest.write(line);
    dest.flush();
    expect(dest.dropped).toBe(5);
    dest.flushSync();
    // The first 600 bytes may still be on their way from the thread pool.
    await eventually(() => expect(readFileSync(path, 'utf8')).toBe(line.repeat(9)));
    closeSync(fd);
  });
});

describe('the "cards answered" line', () => {
  const line: CardsLine = {
    reqId: 'req-7',
    // Every kind of text a JSON string must escape or encode: quote, backslash, control
    // character, non-ASCII, a character outside the BMP.
    workspaceId: 'w_"quoted"\\',
    customerId: 'c_\u0001_Zoë_\u{1F600}',
    threadId: 'th_\n',
    keys: [
      { key: 'alpha', result: 'fresh', source: 'cache', ms: 0 },
      { key: 'nope', result: 'unknown', source: null, ms: 12 },
    ],
    degraded: true,
  };
  const expected = {
    level: 30,
    service: 'cardproxy',
    reqId: 'req-7',
    workspaceId: 'w_"quoted"\\',
    customerId: 'c_\u0001_Zoë_\u{1F600}',
    threadId: 'th_\n',
    keys: line.keys,
    degraded: true,
    msg: 'cards answered',
  };

  it('is one JSON line among the pino lines, its text escaped where JSON needs it', () => {
    const { path, fd } = tempFile();
    const dest = new BatchedDestination({ fd, maxBufferedBytes: 1024 * 1024 });
    const log = pino({ base: { service: 'cardproxy' } }, dest);
    const write = cardsLineWriter(log);
    log.info('before');
    write(line);
    write({ ...line, threadId: null, degraded: false, keys: [] });
    log.info('after');
    dest.flushSync();
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.msg)).toEqual(['before', 'cards answered', 'cards answered', 'after']);
    expect(lines[1]).toEqual({ ...expected, time: expect.any(Number) });
    expect(lines[2]).toEqual({ ...expected, threadId: null, degraded: false, keys: [], time: expect.any(Number) });
    closeSync(fd);
  });

  it('is the same line for a destination of its own', () => {
    const written: string[] = [];
    const log = pino({ base: { service: 'cardproxy' } }, { write: (text: string) => written.push(text) });
    cardsLineWriter(log)(line);
    expect(written).toHaveLength(1);
    expect(written[0]!.endsWith('}\n')).toBe(true);
    expect(JSON.parse(written[0]!)).toEqual({ ...expected, time: expect.any(Number) });
  });
});
