/** Starts and stops the baseline server process (bench/lib/baseline-server.mjs). */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HOST, freePort, sleep, waitFor } from './util.mjs';

const SERVER = fileURLToPath(new URL('./baseline-server.mjs', import.meta.url));

export async function startBaseline(dir, name, bytes) {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, bytes);
  const port = await freePort();
  const child = spawn(process.execPath, [SERVER, String(port), file], { stdio: 'ignore' });
  let exited = false;
  const exitedPromise = new Promise((r) => child.once('exit', () => ((exited = true), r())));
  const url = `http://${HOST}:${port}`;
  await waitFor(
    async () => {
      if (exited) throw new Error('baseline server exited');
      try {
        const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
        await r.arrayBuffer();
        return r.ok;
      } catch {
        return false;
      }
    },
    { timeoutMs: 15_000, what: 'baseline server' },
  );
  return {
    url,
    pid: child.pid,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const late = await Promise.race([exitedPromise.then(() => false), sleep(5000).then(() => true)]);
      if (late) child.kill('SIGKILL');
    },
  };
}
