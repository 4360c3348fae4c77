/**
 * A Redis Cluster of `redis-server` processes on loopback ports (3 masters, no replicas by default),
 * built with CLUSTER ADDSLOTS / MEET over ioredis, so `redis-cli` is not needed. Persists nothing;
 * `stop()` kills the nodes and removes their directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { tempDir } from './fs.js';
import { freePort } from './ports.js';
import { kill } from './proc.js';

export const CLUSTER_SLOTS = 16384;

export interface RedisClusterNode {
  host: '127.0.0.1';
  port: number;
  /** The cluster bus port (`cluster-port`), which MEET must be told when it is not port + 10000. */
  busPort: number;
  url: string;
}

export interface RedisCluster {
  nodes: RedisClusterNode[];
  /** `host:port` of every master: startup nodes for `redis.nodes`. */
  addresses: string[];
  /** Keys stored on each master (DBSIZE), in `nodes` order. */
  keysPerNode(): Promise<number[]>;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;

export async function startRedisCluster(opts: { masters?: number } = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  const dir = await tempDir('redis-cluster');
  const procs: ChildProcess[] = [];
  const nodes: RedisClusterNode[] = [];
  const stop = async () => {
    await Promise.allSettled(procs.map(kill));
    await dir.cleanup();
  };
  try {
    for (let i = 0; i < masters; i++) {
      const { proc, port, busPort } = await launchNode(join(dir.path, `node-${i}.conf`), dir.path);
      procs.push(proc);
      nodes.push({ host: '127.0.0.1', port, busPort, url: `redis://127.0.0.1:${port}` });
    }
    await formCluster(nodes);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes,
    addresses: nodes.map((n) => `${n.host}:${n.port}`),
    async keysPerNode() {
      return Promise.all(nodes.map((n) => withClient(n.port, (r) => r.dbsize())));
    },
    stop,
  };
}

/** One cluster-enabled redis-server; the bus port is chosen too (`cluster-port`), not port + 10000. */
async function launchNode(
  configFile: string,
  workDir: string,
): Promise<{ proc: ChildProcess; port: number; busPort: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const busPort = await freePort();
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--cluster-enabled',
      'yes',
      '--cluster-port',
      String(busPort),
      '--cluster-config-file',
      `${configFile}.${port}`,
      '--cluster-node-timeout',
      '2000',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      workDir,
      '--logfile',
      '',
    ];
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer) => {
      output = (output + b.toString()).slice(-4000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    const exited = once(proc, 'exit').then(() => {
      throw new Error(`redis-server (cluster node, port ${port}) exited during start:\n${output}`);
    });
    const spawnError = once(proc, 'error').then(([err]) => {
      throw new Error(`cannot run redis-server: ${(err as Error).message}`);
    });
    try {
      await Promise.race([waitForPing(port), exited, spawnError]);
      return { proc, port, busPort };
    } catch (err) {
      await kill(proc);
      if (attempt >= 3) throw err;
    } finally {
      exited.catch(() => {});
      spawnError.catch(() => {});
    }
  }
}

/** Splits the slots evenly, introduces every node to the first, waits for `cluster_state:ok` everywhere. */
async function formCluster(nodes: RedisClusterNode[]): Promise<void> {
  const per = Math.ceil(CLUSTER_SLOTS / nodes.length);
  await Promise.all(
    nodes.map((n, i) =>
      withClient(n.port, async (r) => {
        const slots: number[] = [];
        for (let s = i * per; s < Math.min(CLUSTER_SLOTS, (i + 1) * per); s++) slots.push(s);
        await r.call('CLUSTER', 'ADDSLOTS', ...slots.map(String));
      }),
    ),
  );
  await withClient(nodes[0]!.port, async (r) => {
    for (const n of nodes.slice(1))
      await r.call('CLUSTER', 'MEET', n.host, String(n.port), String(n.busPort));
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const states = await Promise.all(
      nodes.map((n) => withClient(n.port, async (r) => String(await r.call('CLUSTER', 'INFO')))),
    );
    const ok = states.every(
      (s) => /cluster_state:ok/.test(s) && new RegExp(`cluster_known_nodes:${nodes.length}\\b`).test(s),
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`Redis Cluster not ready:\n${states.join('\n')}`);
    await delay(100);
  }
}

async function withClient<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  r.on('error', () => {}); // a node not listening yet: connect() rejects, which is what we look at
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

async function waitForPing(port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const pong = await withClient(port, (r) => r.ping()).catch(() => undefined);
    if (pong === 'PONG') return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
    await delay(50);
  }
}
