/**
 * The suite's Redis Cluster (test/global-setup.ts) is what cluster mode is tested against: three
 * masters that together serve every hash slot.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { Cluster } from 'ioredis';

const nodes = inject('redisClusterNodes');

describe.skipIf(nodes.length === 0)('the suite Redis Cluster', () => {
  const cluster = new Cluster(nodes.map((url) => url));
  afterAll(() => cluster.disconnect());

  it('has three masters that serve all 16384 slots', async () => {
    const slots = (await cluster.cluster('SLOTS')) as Array<[number, number, ...unknown[]]>;
    const served = slots.reduce((sum, [from, to]) => sum + (to - from + 1), 0);
    expect(served).toBe(16_384);
    expect(new Set(slots.map((s) => JSON.stringify(s[2]))).size).toBe(3);
    expect(await cluster.cluster('INFO')).toContain('cluster_state:ok');
  });
});
