/**
 * Runs the simulated slow legacy card API on its own (`node dist/demo/legacy-api-main.js`), for
 * docker-compose or a manual setup. Environment:
 *
 * - `PORT` (default 8090), `HOST` (default 0.0.0.0)
 * - `DEMO_MIN_LATENCY_MS` (default 2000), `DEMO_MAX_LATENCY_MS` (default 6000)
 * - `DEMO_FAILURE_RATE` (0..1, default 0.1)
 *
 * Logs one line per request to stdout and exits 0 on SIGTERM/SIGINT.
 */
import { startLegacyApi } from './legacy-api.js';

function numberFromEnv(name: string, fallback: number, check: (n: number) => boolean, rule: string): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || !check(value)) {
    console.error(`legacy-api: ${name}=${JSON.stringify(raw)} is invalid: ${rule}`);
    process.exit(2);
  }
  return value;
}

async function main(): Promise<void> {
  const port = numberFromEnv('PORT', 8090, (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'an integer port 0..65535');
  const minLatencyMs = numberFromEnv('DEMO_MIN_LATENCY_MS', 2000, (n) => n >= 0, 'a number of ms >= 0');
  const maxLatencyMs = numberFromEnv('DEMO_MAX_LATENCY_MS', Math.max(6000, minLatencyMs), (n) => n >= minLatencyMs, `a number of ms >= DEMO_MIN_LATENCY_MS (${minLatencyMs})`);
  const failureRate = numberFromEnv('DEMO_FAILURE_RATE', 0.1, (n) => n >= 0 && n <= 1, 'a number between 0 and 1');
  const host = process.env.HOST?.trim() || '0.0.0.0';

  const api = await startLegacyApi({ port, host, minLatencyMs, maxLatencyMs, failureRate, log: (line) => console.log(line) });
  console.log(
    `legacy card API listening on ${host}:${api.port} (POST /cards; latency ${minLatencyMs}..${maxLatencyMs} ms, failure rate ${failureRate})`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    const { requests, failures } = api.stats();
    console.log(`legacy card API: ${signal} received, stopping (${requests} requests, ${failures} simulated failures)`);
    api.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error('legacy card API: error while closing', err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error('legacy card API failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
