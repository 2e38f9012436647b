/**
 * Child process that generates open-loop load: `rate` requests a second, evenly spaced, for
 * `duration` seconds, over at most `connections` keep-alive connections (an undici Pool). Reads
 * its spec (JSON) from argv[2], prints one JSON line with the result on stdout.
 *
 * Unlike a closed loop (each connection sends its next request when the last one is answered),
 * arrivals do not wait for the server, so the latency is that of a server at this rate rather
 * than the queue in front of a saturated one. Every latency is measured from the moment the
 * request was due, not from when it could be sent: a request that waited for a free connection,
 * or for a late timer of this process, counts that wait against the server (no coordinated
 * omission). `lateSends` counts requests sent more than 2 ms after they were due (1 ms is the
 * timer's granularity); a large share means this process could not keep the pace.
 * A second at the same pace, not measured, comes first (connections opened, JIT warm).
 */
import { Pool } from 'undici';
import { requestSet } from './request-set.mjs';
import { latencySummary } from './util.mjs';

const spec = JSON.parse(process.argv[2]);
const { url, connections, duration, rate, timeout = 30 } = spec;
const requests = requestSet(spec);
const target = new URL(url);
const pool = new Pool(target.origin, { connections, pipelining: 1, headersTimeout: timeout * 1000, bodyTimeout: timeout * 1000 });

/** Sends one request; resolves with its status (0: failed) and the time its answer ended. */
async function send() {
  const { body, headers } = requests.next();
  try {
    const res = await pool.request({ path: target.pathname, method: 'POST', headers, body });
    await res.body.dump({ limit: Infinity });
    return { status: res.statusCode, at: performance.now() };
  } catch {
    return { status: 0, at: performance.now() };
  }
}

/** A request sent later than this after it was due counts as late: more than the timer's own granularity. */
const LATE_MS = 2;

/**
 * Sends `rate` requests a second, evenly spaced, for `seconds`; `onAnswer(status, latencyMs)`
 * for each, latency counted from when the request was due. Resolves when all are answered.
 */
function pacedRun(seconds, onAnswer) {
  const total = Math.max(1, Math.round(rate * seconds));
  const intervalMs = 1000 / rate;
  const start = performance.now();
  let sent = 0;
  let done = 0;
  let late = 0;
  return new Promise((resolveAll) => {
    const dispatch = (due) => {
      if (performance.now() - due > LATE_MS) late++;
      send().then(({ status, at }) => {
        onAnswer(status, at - due);
        if (++done === total) resolveAll({ sent, late, wallMs: performance.now() - start });
      });
    };
    // A timer cannot fire every 100 µs: each tick sends every request that has come due since the last.
    const tick = () => {
      const dueNow = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1);
      while (sent < dueNow) dispatch(start + sent++ * intervalMs);
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
}

// Unmeasured warm-up at the same pace: opens the connections and lets the JIT compile this
// process's request path, whose first slow moments would otherwise be most of a short run's tail.
await pacedRun(Math.min(1, duration), () => {});

const latencies = [];
const statuses = {};
let errors = 0;
const cpuBefore = process.cpuUsage();
const { sent, late: lateSends, wallMs } = await pacedRun(duration, (status, ms) => {
  if (status === 0) {
    errors++;
    return;
  }
  statuses[status] = (statuses[status] ?? 0) + 1;
  latencies.push(ms);
});
const cpu = process.cpuUsage(cpuBefore);
await pool.close();
const answered = latencies.length;
const out = {
  rate,
  rps: (answered * 1000) / wallMs,
  total: answered,
  sent,
  errors,
  non2xx: answered - (statuses[200] ?? 0),
  statuses,
  lateSends,
  cpuMs: (cpu.user + cpu.system) / 1000,
  wallMs,
  prebuilt: requests.prebuilt,
  latency: latencySummary(latencies),
};
process.stdout.write(`${JSON.stringify(out)}\n`);
