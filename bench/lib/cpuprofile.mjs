/**
 * Summarises a V8 .cpuprofile (as written by `node --cpu-prof`): self time by package or product
 * file, the hottest functions, and the inclusive time of named parts of the warm path (a sample
 * counts once for a part when any frame of its stack belongs to it).
 */
import { readFileSync } from 'node:fs';

function category(frame) {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle)
    return `(native) ${functionName || 'anonymous'}`;
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 14).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = url.indexOf('/dist/');
  if (dist !== -1) return `cardproxy ${url.slice(dist + 6)}`;
  if (url.startsWith('node:')) {
    const m = /^node:(internal\/)?([^/]+)/.exec(url);
    return `node:${m ? m[2] : url}`;
  }
  return url;
}

/** Parts of the warm path, matched against any frame of a sample's stack. */
const PARTS = [
  ['whole /cards handler (route function and below)', (f) => f.url.endsWith('/dist/http/routes/cards.js')],
  ['  CardResolver.resolve', (f) => f.functionName === 'resolve' && f.url.endsWith('/card-resolver.js')],
  ['    CardStore.readForRequest (MGET, decode)', (f) => f.functionName === 'readForRequest'],
  ['    decodeCardState (JSON.parse + envelope check)', (f) => f.functionName === 'decodeCardState'],
  ['    #finish (answers, metrics, markServed)', (f) => f.functionName === '#finish'],
  ['    CardStore.markServed (SET PX pipeline)', (f) => f.functionName === 'markServed'],
  ['  request schema validation (zod, called from the route)', (f, up) => f.url.includes('/node_modules/zod/') && up?.url.endsWith('/dist/http/routes/cards.js')],
  ['signature check (HMAC)', (f) => f.functionName === 'verifySignature'],
  ['zod (any use)', (f) => f.url.includes('/node_modules/zod/')],
  ['pino + sonic-boom (logging)', (f) => /\/node_modules\/(pino|sonic-boom|pino-std-serializers|fast-redact|quick-format-unescaped)\//.test(f.url)],
  ['prom-client (metrics)', (f) => f.url.includes('/node_modules/prom-client/')],
  ['ioredis + parser (Redis client)', (f) => /\/node_modules\/(ioredis|redis-parser|denque|redis-errors|cluster-key-slot|standard-as-callback)\//.test(f.url)],
  ["fastify's reply serializer (JSON.stringify of the answer)", (f) => f.functionName === 'serialize' && f.url.includes('/node_modules/fastify/')],
  ['(garbage collector)', (f) => f.functionName === '(garbage collector)'],
];

export function summarizeProfile(file, { top = 15, fromUs = -Infinity, toUs = Infinity } = {}) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map();
  const parent = new Map();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // Each sample stands for the time since the previous one. Timestamps are on the monotonic clock
  // that process.hrtime() reads too, so only samples inside [fromUs, toUs] are counted.
  const { samples, timeDeltas } = profile;
  let at = profile.startTime;
  let busy = 0;
  let idle = 0;
  const partTime = new Array(PARTS.length).fill(0);
  const catTime = new Map();
  const fnTime = new Map();
  for (let i = 0; i < samples.length; i++) {
    at += timeDeltas[i];
    if (at < fromUs || at > toUs) continue;
    const dt = timeDeltas[i] / 1000; // ms
    const leaf = byId.get(samples[i]);
    const frame = leaf.callFrame;
    if (frame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    const cat = category(frame);
    catTime.set(cat, (catTime.get(cat) ?? 0) + dt);
    const fn = `${frame.functionName || '(anonymous)'} ${frame.url ? `${cat}:${frame.lineNumber + 1}` : ''}`.trim();
    fnTime.set(fn, (fnTime.get(fn) ?? 0) + dt);
    const hit = new Array(PARTS.length).fill(false);
    for (let id = samples[i], depth = 0; id !== undefined && depth < 500; id = parent.get(id), depth++) {
      const f = byId.get(id).callFrame;
      const up = parent.has(id) ? byId.get(parent.get(id)).callFrame : undefined;
      for (let p = 0; p < PARTS.length; p++) if (!hit[p] && PARTS[p][1](f, up)) hit[p] = true;
    }
    for (let p = 0; p < PARTS.length; p++) if (hit[p]) partTime[p] += dt;
  }
  const sortDesc = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    busyMs: busy,
    idleMs: idle,
    categories: sortDesc(catTime).slice(0, top),
    functions: sortDesc(fnTime).slice(0, top),
    parts: PARTS.map(([name], p) => [name, partTime[p]]),
  };
}
