/**
 * Runs once before the suite: makes sure a Redis answers (starting a throw-away `redis-server`
 * when none does), starts a private 3-master Redis Cluster for the cluster-mode tests (SPEC 13),
 * and compiles `dist/` so that tests can spawn the real CLI.
 */
import { spawnSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { redisClusterToolsInstalled, startRedisCluster, type RedisCluster } from './helpers/redis-cluster.js';
import { redisAnswers as answers, redisServerInstalled, startPrivateRedis, type PrivateRedis } from '../src/demo/private-redis.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let ownRedis: PrivateRedis | undefined;
  if (!(await answers(redisUrl))) {
    if (!redisServerInstalled()) {
      throw new Error(
        `No Redis answers at ${redisUrl} and no redis-server is installed. ` +
          'Install one (Debian: apt-get install redis-server) or set REDIS_URL to a Redis 6.2+ server.',
      );
    }
    ownRedis = await startPrivateRedis();
    redisUrl = ownRedis.url;
  }
  process.env.REDIS_URL = redisUrl;
  project.provide('redisUrl', redisUrl);

  // Cluster mode runs on every CI run; elsewhere it is skipped (with a note) without the tools.
  let cluster: RedisCluster | undefined;
  if (redisClusterToolsInstalled()) cluster = await startRedisCluster();
  else if (process.env.CI) throw new Error('CI must run the cluster-mode tests: install redis-server and redis-cli');
  else console.warn('redis-server or redis-cli missing: the Redis Cluster tests are skipped');
  project.provide('redisClusterNodes', cluster?.nodes ?? []);

  // Process-level tests spawn `node dist/cli.js`; CARDPROXY_SKIP_BUILD=1 skips this when only pure tests run.
  if (process.env.CARDPROXY_SKIP_BUILD !== '1') {
    // The whole build: the console's browser modules too (test/console drives them in Chromium).
    const build = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
    if (build.status !== 0) throw new Error('npm run build failed');
  }

  return async () => {
    ownRedis?.stop();
    await cluster?.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    /** Seed nodes of the suite's Redis Cluster (`redis://127.0.0.1:<port>`); empty when it is skipped. */
    redisClusterNodes: readonly string[];
  }
}
