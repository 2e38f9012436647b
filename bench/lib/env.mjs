/**
 * A scenario environment: a unique Redis key prefix, an upstream, cardproxy processes, and a
 * teardown that stops exactly what was started and deletes the prefix's keys.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { deletePrefix, uniquePrefix } from './redis.mjs';
import { ROOT, makeConfig, startProcess, writeConfig } from './cardproxy.mjs';
import { startUpstream } from './upstream.mjs';

const { keyLayout } = await import(pathToFileURL(join(ROOT, 'dist', 'redis', 'keys.js')).href);
export { keyLayout };

/**
 * @param ctx the runner's context ({ redis, tmpDir, prefixes })
 * @param opts { tag, upstream: {latencyMs, limit}, config: makeConfig overrides, processes: [{role, name}] }
 */
export async function openEnv(ctx, { tag, upstream: upstreamOpts = {}, config: configOpts = {}, processes }) {
  const prefix = uniquePrefix(tag);
  ctx.prefixes.add(prefix);
  const dir = join(ctx.tmpDir, tag);
  mkdirSync(dir, { recursive: true });
  const upstream = await startUpstream(upstreamOpts);
  const config = makeConfig({ prefix, upstreamUrl: upstream.url, ...configOpts });
  const configPath = writeConfig(dir, 'config', config);
  const procs = [];
  const env = {
    prefix,
    dir,
    config,
    configPath,
    upstream,
    procs,
    keys: keyLayout(prefix),
    async start(role, name = role, extra = {}) {
      const p = await startProcess({ role, configPath, dir, name, ...extra });
      procs.push(p);
      return p;
    },
    async close() {
      await Promise.all(procs.map((p) => p.stop()));
      await upstream.close();
      await deletePrefix(ctx.redis, prefix);
      ctx.prefixes.delete(prefix);
    },
  };
  try {
    for (const { role, name } of processes ?? []) await env.start(role, name);
  } catch (err) {
    await env.close();
    throw err;
  }
  return env;
}

/** Card-key names in Redis for (customer, key) pairs of the bench workspace, customer scope. */
export function cardRedisKey(env, workspaceId, customerId, cardKey) {
  return env.keys.card({ workspaceId, customerId, threadId: null, cardKey });
}

/** How many of these Redis keys exist (pipelined EXISTS in batches of 1000). */
export async function countExisting(redis, keys) {
  let n = 0;
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    n += await redis.exists(...batch);
  }
  return n;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool(items, limit, fn) {
  let next = 0;
  const results = new Array(items.length);
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return results;
}
