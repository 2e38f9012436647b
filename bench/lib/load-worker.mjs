/**
 * Child process that generates closed-loop load with autocannon, so the load generator never
 * shares an event loop with the product or the runner. Reads its spec (JSON) from argv[2], prints
 * one JSON line with the result on stdout. The requests come from bench/lib/request-set.mjs.
 * Latencies are collected from autocannon's `response` events in float milliseconds (autocannon's
 * own histogram has 1 ms resolution). The result reports this process's own CPU time during the
 * run (`cpuMs`), so the runner can tell whether the load generator was the bottleneck.
 *
 * autocannon's `overallRate` is a quota per connection and second, sent as fast as it goes and
 * then paused until the next second: bursts, not an even pace. For latency at a steady arrival
 * rate use bench/lib/paced-load-worker.mjs.
 */
import autocannon from 'autocannon';
import { requestSet } from './request-set.mjs';
import { latencySummary } from './util.mjs';

const spec = JSON.parse(process.argv[2]);
const { url, connections, duration, amount, overallRate, timeout = 30 } = spec;
const requests = requestSet(spec);

const latencies = [];
const cpuBefore = process.cpuUsage();
const wallBefore = performance.now();
const statuses = {};
const instance = autocannon({
  url,
  connections,
  ...(amount ? { amount } : { duration }),
  ...(overallRate ? { overallRate } : {}),
  timeout,
  method: 'POST',
  requests: [
    {
      method: 'POST',
      setupRequest(req) {
        const r = requests.next();
        req.body = r.body;
        req.headers = r.headers;
        return req;
      },
    },
  ],
});
instance.on('response', (_client, statusCode, _bytes, ms) => {
  latencies.push(ms);
  statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
});

const result = await instance;
const cpu = process.cpuUsage(cpuBefore);
const wallMs = performance.now() - wallBefore;
const out = {
  rps: result.requests.average,
  total: result.requests.total,
  sent: result.requests.sent,
  bodiesBuilt: requests.built(),
  durationS: result.duration,
  errors: result.errors,
  timeouts: result.timeouts,
  non2xx: result.non2xx,
  statuses,
  throughputBps: result.throughput.average,
  cpuMs: (cpu.user + cpu.system) / 1000,
  wallMs,
  prebuilt: requests.prebuilt,
  latency: latencySummary(latencies),
};
process.stdout.write(`${JSON.stringify(out)}\n`);
