/** Runs the built CLI (`node dist/cli.js …`) against the test Redis and collects its output. */
import { spawn } from 'node:child_process';
import { redisUrl } from './harness.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** CARDPROXY_CONFIG from the caller's environment is dropped; `env` adds or overrides variables. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const baseEnv: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: redisUrl() };
    delete baseEnv.CARDPROXY_CONFIG;
    const child = spawn(process.execPath, ['dist/cli.js', ...args], { env: { ...baseEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
