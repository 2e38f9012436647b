/**
 * Child process that generates load with autocannon, so the load generator never shares an event
 * loop with the product or the runner. Reads its spec (JSON) from argv[2], prints one JSON line
 * with the result on stdout.
 *
 * Bodies come from a counter shared by all connections:
 *  - `customers.count`: request n asks for customer `prefix + ((offset + n) % count)` (warm pool);
 *    without it every request asks for a new customer `prefix + (offset + n)` (cold, distinct);
 *  - `threads`: request n carries thread `threads.prefix + n`, so no (customer, thread) pair ever
 *    repeats (a repeated single-key request within its TTL would be a manual reload, SPEC 5.6).
 * Every body is signed like Plain does. With `prebuilt: N`, the first N requests (bodies, headers
 * and signatures) are built and signed before the run starts, so the load generator's own work per
 * request is only autocannon's; past N the counter builds on demand as before. Latencies are
 * collected from autocannon's `response` events in float milliseconds (autocannon's own histogram
 * has 1 ms resolution). The result reports this process's own CPU time during the run (`cpuMs`),
 * so the runner can tell whether the load generator was the bottleneck.
 */
import { createHmac } from 'node:crypto';
import autocannon from 'autocannon';

const spec = JSON.parse(process.argv[2]);
const { url, connections, duration, amount, overallRate, timeout = 30, workspaceId, secret, keys, customers, threads, prebuilt = 0 } = spec;
const keysJson = JSON.stringify(keys);
let n = 0;

function body() {
  const i = n++;
  const index = customers.count ? (customers.offset + i) % customers.count : customers.offset + i;
  const id = `${customers.prefix}${index}`;
  const thread = threads ? `{"id":"${threads.prefix}${i}","externalId":null}` : 'null';
  return `{"cardKeys":${keysJson},"customer":{"id":"${id}","email":"${id}@example.com","externalId":"ext-${id}"},"thread":${thread},"tenant":null}`;
}

function signed() {
  const b = body();
  return {
    body: b,
    headers: {
      'content-type': 'application/json',
      'plain-workspace-id': workspaceId,
      'plain-request-signature': createHmac('sha256', secret).update(b).digest('hex'),
    },
  };
}
const ready = Array.from({ length: prebuilt }, signed);
let next = 0;

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
        const r = next < ready.length ? ready[next++] : signed();
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
latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] : NaN);
const out = {
  rps: result.requests.average,
  total: result.requests.total,
  sent: result.requests.sent,
  bodiesBuilt: n,
  durationS: result.duration,
  errors: result.errors,
  timeouts: result.timeouts,
  non2xx: result.non2xx,
  statuses,
  throughputBps: result.throughput.average,
  cpuMs: (cpu.user + cpu.system) / 1000,
  wallMs,
  prebuilt: ready.length,
  latency: {
    count: latencies.length,
    mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    max: latencies.length ? latencies[latencies.length - 1] : NaN,
  },
};
process.stdout.write(`${JSON.stringify(out)}\n`);
