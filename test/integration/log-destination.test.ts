/**
 * The process's stdout log destination: the lines of one event-loop turn reach the file
 * descriptor together, in order, right after the turn; held lines survive `process.exit()`;
 * and past its bound it drops lines and counts them instead of holding them without end.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
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
  it('writes nothing while a turn runs, then that turn\'s lines in order', async () => {
    const { path, fd } = tempFile();
    const dest = new BatchedDestination({ fd, maxBufferedBytes: 1024 * 1024 });
    const lines = Array.from({ length: 50 }, (_, i) => `{"n":${i}}\n`);
    for (const line of lines) dest.write(line);
    expect(readFileSync(path, 'utf8')).toBe('');
    await eventually(() => expect(readFileSync(path, 'utf8')).toBe(lines.join('')));
    dest.write('{"n":"next turn"}\n');
    await eventually(() => expect(readFileSync(path, 'utf8')).toBe(`${lines.join('')}{"n":"next turn"}\n`));
    expect(dest.dropped).toBe(0);
    closeSync(fd);
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
