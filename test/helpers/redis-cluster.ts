/**
 * A real Redis Cluster of three masters (no replicas) on free ports of 127.0.0.1, in a temporary
 * folder, without persistence: what the suite runs cluster mode against (SPEC 13). The global
 * setup starts one for the whole run; a test that kills a master starts its own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';

export interface RedisCluster {
  /** Seed nodes, `redis://127.0.0.1:<port>`, one per master. */
  readonly nodes: readonly string[];
  /** SIGKILLs master `index` (its slots' data is gone with it: no persistence). */
  killMaster(index: number): Promise<void>;
  /**
   * Starts master `index` again on its port with its old `nodes.conf` (same id, same slots, no
   * data) and waits until every node says `cluster_state:ok`.
   */
  restartMaster(index: number): Promise<void>;
  /** `restartMaster` for several masters at once (all of them, after a whole-cluster outage). */
  restartMasters(indexes: readonly number[]): Promise<void>;
  stop(): Promise<void>;
}

/** Whether both `redis-server` and `redis-cli` are on the PATH. */
export function redisClusterToolsInstalled(): boolean {
  return spawnSync('sh', ['-c', 'command -v redis-server && command -v redis-cli'], { stdio: 'ignore' }).status === 0;
}

/**
 * How long a master may be silent before the others mark it failed. Short, so a restarted master
 * is taken back soon (Redis clears a master's FAIL flag after twice this); long enough that a
 * loaded machine does not pass for a dead node.
 */
const NODE_TIMEOUT_MS = 3000;

interface Node {
  readonly port: number;
  readonly busPort: number;
  readonly dir: string;
  child: ChildProcess;
  exited: Promise<void>;
}

function spawnNode(node: Omit<Node, 'child' | 'exited'>): Node {
  const child = spawn(
    'redis-server',
    [
      '--port', String(node.port),
      // An explicit bus port: port + 10000 may be taken, or past 65535.
      '--cluster-port', String(node.busPort),
      '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf',
      '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
      '--save', '',
      '--appendonly', 'no',
      '--dir', node.dir,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { ...node, child, exited };
}

async function clusterInfo(port: number): Promise<string> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.cluster('INFO');
  } catch {
    return '';
  } finally {
    client.disconnect();
  }
}

async function until(what: string, deadlineMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Redis Cluster: ${what} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function allOk(nodes: readonly Node[]): Promise<boolean> {
  const infos = await Promise.all(nodes.map((n) => clusterInfo(n.port)));
  return infos.every((info) => info.includes('cluster_state:ok'));
}

/** Starts three masters, joins them with `redis-cli --cluster create` and waits until all say ok. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'cardproxy-cluster-'));
  const nodes: Node[] = [];
  const used = new Set<number>();
  const port = async () => {
    for (;;) {
      const p = await freePort();
      if (!used.has(p)) return used.add(p), p;
    }
  };
  try {
    for (let i = 0; i < 3; i++) {
      const nodeDir = join(dir, `node-${i}`);
      mkdirSync(nodeDir);
      nodes.push(spawnNode({ port: await port(), busPort: await port(), dir: nodeDir }));
    }
    await until('nodes answering', 10_000, async () => (await Promise.all(nodes.map((n) => clusterInfo(n.port)))).every((i) => i !== ''));
    const create = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    await until('cluster_state:ok on every node', 20_000, () => allOk(nodes));
  } catch (err) {
    await Promise.all(nodes.map(stopNode));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const killAll = () => nodes.forEach((n) => n.child.kill('SIGKILL'));
  const restartMasters = async (indexes: readonly number[]) => {
    for (const index of indexes) {
      const old = nodes[index]!;
      nodes[index] = spawnNode({ port: old.port, busPort: old.busPort, dir: old.dir });
    }
    await until('the restarted masters back with cluster_state:ok everywhere', 30_000, () => allOk(nodes));
  };
  process.once('exit', killAll);

  return {
    nodes: nodes.map((n) => `redis://127.0.0.1:${n.port}`),
    async killMaster(index) {
      await stopNode(nodes[index]!);
    },
    restartMaster: (index) => restartMasters([index]),
    restartMasters,
    async stop() {
      process.off('exit', killAll);
      await Promise.all(nodes.map(stopNode));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function stopNode(node: Node): Promise<void> {
  if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL');
  await node.exited;
}
