/**
 * A long-running `node dist/cli.js <command>` (a server) for tests that signal it: its output is
 * kept, its log lines can be awaited, and `stopCliProcesses` kills whatever a file started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
  /** The JSON log lines written so far (stdout), parsed. */
  lines(): Record<string, unknown>[];
  /** Resolves with the first log line with this `msg` after the first `skip` of them. */
  waitForLine(msg: string, opts?: { skip?: number; timeoutMs?: number }): Promise<Record<string, unknown>>;
  /** Resolves once stdout or stderr contains `text`. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
}

const running: CliProcess[] = [];

/** Spawns the CLI; the environment is this process's minus CARDPROXY_CONFIG and PORT, plus `env`. */
export function startCli(args: string[], env: Record<string, string> = {}, command: string[] = [process.execPath, 'dist/cli.js']): CliProcess {
  const base = { ...process.env };
  delete base.CARDPROXY_CONFIG;
  delete base.PORT;
  const [file, ...pre] = command;
  const child = spawn(file!, [...pre, ...args], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const lines = () =>
    out.split('\n').flatMap((line) => {
      try {
        return line.startsWith('{') ? [JSON.parse(line) as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
  const proc: CliProcess = {
    child,
    exited,
    output: () => `--- ${args.join(' ')} stdout:\n${out}\n--- stderr:\n${err}`,
    lines,
    async waitForOutput(text, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!out.includes(text) && !err.includes(text)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no output "${text}"\n${proc.output()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async waitForLine(msg, opts = {}) {
      const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
      for (;;) {
        const found = lines().filter((l) => l.msg === msg)[opts.skip ?? 0];
        if (found) return found;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no log line "${msg}"\n${proc.output()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
  running.push(proc);
  return proc;
}

/** Kills every process `startCli` started in this file (SIGKILL) and waits for their exit. */
export async function stopCliProcesses(): Promise<void> {
  const procs = running.splice(0);
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}
