/**
 * A counting legacy card API on node:http (127.0.0.1 only): answers Plain's card protocol with
 * typical ~2 KB cards after a configurable latency, and records what cardproxy asked of it:
 * HTTP calls, card loads per (customer, key), and the most requests it ever had in flight.
 * With `limit`, a request arriving while `limit` are already in flight is refused with 503 (a
 * legacy system falling over) and counted as a violation.
 */
import { createServer } from 'node:http';
import { HOST } from './util.mjs';
import { typicalComponents } from './cards.mjs';

/**
 * @param opts.latencyFor optional per-call latency by customer id (ms), instead of `latencyMs`
 */
export async function startUpstream({ latencyMs = 0, limit = Infinity, latencyFor = null } = {}) {
  let inFlight = 0;
  let maxInFlight = 0;
  let calls = 0;
  let loads = 0;
  let violations = 0;
  let lastCallAt = 0;
  let firstCallAt = 0;
  const perCard = new Map();
  const sockets = new Set();
  const timers = new Set();
  let latency = latencyMs;

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      if (inFlight >= limit) {
        violations++;
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"overloaded"}');
        return;
      }
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      calls++;
      lastCallAt = Date.now();
      if (firstCallAt === 0) firstCallAt = lastCallAt;
      const customerId = String(body?.customer?.id ?? '');
      const keys = Array.isArray(body?.cardKeys) ? body.cardKeys : [];
      for (const key of keys) {
        const id = `${customerId}\n${key}`;
        perCard.set(id, (perCard.get(id) ?? 0) + 1);
        loads++;
      }
      const answer = () => {
        inFlight--;
        lastCallAt = Date.now();
        if (res.destroyed) return;
        const cards = keys.map((key) => ({ key, timeToLiveSeconds: null, components: typicalComponents(customerId, key) }));
        const text = JSON.stringify({ cards });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      };
      const wait = latencyFor ? latencyFor(customerId) : latency;
      if (wait <= 0) {
        setImmediate(answer);
      } else {
        const timer = setTimeout(() => {
          timers.delete(timer);
          answer();
        }, wait);
        timers.add(timer);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const { port } = server.address();

  return {
    url: `http://${HOST}:${port}/cards`,
    setLatency(ms) {
      latency = ms;
    },
    stats() {
      let duplicated = 0;
      const duplicates = [];
      for (const [id, n] of perCard) {
        if (n <= 1) continue;
        duplicated++;
        if (duplicates.length < 5) duplicates.push(`${id.replace('\n', '/')} ×${n}`);
      }
      return { calls, loads, distinct: perCard.size, duplicated, duplicates, maxInFlight, inFlight, violations, firstCallAt, lastCallAt };
    },
    loadsOf(customerId, key) {
      return perCard.get(`${customerId}\n${key}`) ?? 0;
    },
    reset() {
      calls = loads = violations = maxInFlight = 0;
      firstCallAt = lastCallAt = 0;
      perCard.clear();
    },
    /** Resolves once nothing is in flight and no call came for `quietMs` (bounded by `timeoutMs`). */
    async settle({ quietMs = 1000, timeoutMs = 60_000 } = {}) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (inFlight === 0 && Date.now() - lastCallAt >= quietMs) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    },
    close() {
      for (const t of timers) clearTimeout(t);
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
