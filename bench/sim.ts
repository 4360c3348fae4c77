/**
 * `npm run bench:scale -- --sim [--tenants=100 --files=10000 --poll-tenants=1000 --poll-seconds=30
 * --queue-jobs=20000 --cluster-tenants=20]`
 *
 * Many tenants by simulation, no FTP server: each tenant is a synthetic source (test/support/fakes/
 * synthetic-source.ts) whose listing is generated on the fly. Against a real redis-server (and a
 * 3-master Redis Cluster of redis-server processes):
 * 1. Redis memory per tracked version: `tenants` × `files` versions written through the state adapter
 *    (as workers write them), INFO used_memory delta / versions — on one server and on the cluster
 *    (summed over its masters).
 * 2. Poll CPU: a daemon (poller role) polling (a) `poll-tenants` tenants with empty listings — what
 *    scheduling a poll costs (BullMQ scheduler, poll job, poll lock, health, state round trips) —
 *    and (b) the `tenants` tenants of step 1, whose `files` files are all synced — a no-change poll,
 *    listing generated and diffed. Daemon and Redis CPU per poll, scaled to 10,000 tenants polled once
 *    a minute.
 * 3. The queue alone: `queue-jobs` sync jobs added as a poll adds them and taken by a BullMQ worker
 *    that does nothing (concurrency 100): jobs per second and CPU per job.
 * Prints the figures; docs/scaling.md's sizing table is computed from them.
 */
import { Writable } from 'node:stream';
import { Queue, Worker } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { makeRedisState } from '../src/adapters/redis-state.js';
import { parseConfig } from '../src/config.js';
import { makeLogger } from '../src/log.js';
import { startDaemon } from '../src/main.js';
import { makeEnqueue } from '../src/queue/enqueue.js';
import { SYNC_QUEUE } from '../src/queue/jobs.js';
import type { RemoteFile } from '../src/types.js';
import { makeMemoryObjectStore } from '../test/support/fakes/memory-object-store.js';
import { makeSyntheticSource, type SyntheticSource } from '../test/support/fakes/synthetic-source.js';
import { startRedis } from '../test/support/redis.js';
import { startRedisCluster } from '../test/support/redis-cluster.js';

export interface SimOptions {
  tenants: number;
  files: number;
  pollTenants: number;
  pollSeconds: number;
  queueJobs: number;
  clusterTenants: number;
}

const started = Date.now();
const say = (msg: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}`);

type Client = Redis | Cluster;

async function masters(client: Client): Promise<Redis[]> {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

async function usedMemory(client: Client): Promise<number> {
  let sum = 0;
  for (const node of await masters(client)) {
    await node.call('MEMORY', 'PURGE').catch(() => {});
    sum += Number(/used_memory:(\d+)/.exec(await node.info('memory'))?.[1]);
  }
  return sum;
}

async function redisCpu(client: Client): Promise<number> {
  let sum = 0;
  for (const node of await masters(client)) {
    const info = await node.info('cpu');
    const get = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
    sum += get('used_cpu_user') + get('used_cpu_sys');
  }
  return sum;
}

const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};

/** Writes every version of the tenants' sources as synced, through the state adapter. */
async function syncAll(client: Client, prefix: string, sources: Map<string, SyntheticSource>) {
  const state = makeRedisState(client, prefix);
  for (const [org, src] of sources) {
    for (let i = 0; i < src.files; i += 2_000) {
      await Promise.all(
        Array.from({ length: Math.min(2_000, src.files - i) }, (_, j) => {
          const v = src.version(i + j);
          return state.markSynced(
            org,
            v.path,
            { ...v, key: `${org}/${v.path}`, syncedAt: Date.now() },
            'pattern',
          );
        }),
      );
    }
  }
}

async function memoryPerVersion(client: Client, prefix: string, tenants: number, files: number) {
  const sources = new Map<string, SyntheticSource>();
  for (let t = 0; t < tenants; t++)
    sources.set(`sim-${t}`, makeSyntheticSource({ files, seed: `sim-${t}`, password: 'p' }));
  const before = await usedMemory(client);
  await syncAll(client, prefix, sources);
  const after = await usedMemory(client);
  return {
    sources,
    perVersion: (after - before) / (tenants * files),
    perTenantMiB: (after - before) / tenants / 2 ** 20,
  };
}

/** Polls every tenant of `sources` for `seconds` (interval `everyMs`) with a poller-role daemon. */
async function pollLoad(
  url: string,
  redis: Redis,
  prefix: string,
  sources: Map<string, SyntheticSource>,
  everyMs: number,
  seconds: number,
) {
  let polls = 0;
  const dest = new Writable({
    write(chunk, _e, cb) {
      for (const line of chunk.toString().split('\n')) if (line.includes('"poll done"')) polls++;
      cb();
    },
  });
  const config = parseConfig({
    redis: { url, prefix },
    s3: { bucket: 'b' },
    vela: { enabled: false },
    defaults: { pollInterval: `${everyMs}ms`, minFileAge: '0s', maxConnections: 2 },
    tenants: [...sources.keys()].map((org) => ({
      org,
      ftp: { host: '127.0.0.1', port: 21, secure: false, user: org, password: 'p' },
      dirs: ['/synthetic'],
    })),
  });
  const daemon = await startDaemon(config, {
    role: 'poller',
    log: makeLogger({ level: 'info' }, dest),
    store: makeMemoryObjectStore(),
    connectSource: (t, c) => sources.get(t.org)!.connect({ password: c.password }),
  });
  try {
    // Let the schedulers settle, then measure a steady window.
    await new Promise((r) => setTimeout(r, Math.min(10_000, everyMs * 2)));
    const p0 = polls;
    const cpu0 = process.cpuUsage();
    const r0 = await redisCpu(redis);
    const clients = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))?.[1]);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const n = polls - p0;
    const daemonCpu = cpuSeconds(cpu0);
    const redisCpuS = (await redisCpu(redis)) - r0;
    return { polls: n, daemonCpu, redisCpu: redisCpuS, seconds, clients };
  } finally {
    await daemon.close();
  }
}

async function queueAlone(redis: Redis, prefix: string, jobs: number) {
  const config = parseConfig({ s3: { bucket: 'b' }, vela: { enabled: false }, tenants: [] });
  const queue = new Queue(SYNC_QUEUE, { connection: redis, prefix });
  const enqueue = makeEnqueue(queue, config, redis);
  const perTenant = 100;
  let done = 0;
  const connection = redis.duplicate({ maxRetriesPerRequest: null });
  const worker = new Worker(SYNC_QUEUE, async () => ({ outcome: 'uploaded', key: '', bytes: 0 }), {
    connection,
    prefix,
    concurrency: 100,
    autorun: false,
  });
  worker.on('completed', () => done++);
  const cpu0 = process.cpuUsage();
  const r0 = await redisCpu(redis);
  const t0 = performance.now();
  for (let t = 0; t < jobs / perTenant; t++) {
    const files: RemoteFile[] = Array.from({ length: perTenant }, (_, i) => ({
      path: `d/call-${i}.wav`,
      size: 1000 + i,
      mtime: '2026-01-01T00:00:00.000Z',
      mtimeExact: true,
    }));
    await enqueue(`q-${t}`, files);
  }
  const added = performance.now();
  void worker.run();
  while (done < jobs) await new Promise((r) => setTimeout(r, 50));
  const seconds = (performance.now() - t0) / 1000;
  const result = {
    jobs,
    addSeconds: (added - t0) / 1000,
    seconds,
    perSecond: jobs / seconds,
    cpuPerJobMs: (cpuSeconds(cpu0) * 1000) / jobs,
    redisCpuPerJobMs: (((await redisCpu(redis)) - r0) * 1000) / jobs,
    leftInRedis: (await redis.keys(`${prefix}:${SYNC_QUEUE}:q-*`)).length,
  };
  await worker.close();
  await queue.close();
  await connection.quit();
  return result;
}

export async function runSim(o: SimOptions): Promise<void> {
  const server = await startRedis();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const version = (await redis.info('server')).match(/redis_version:(\S+)/)?.[1];
  const out: string[] = [];
  try {
    say(
      `memory: ${o.tenants} tenants × ${o.files} files through the state adapter (redis-server ${version})`,
    );
    const mem = await memoryPerVersion(redis, 'sim', o.tenants, o.files);
    out.push(
      `Redis memory per synced version, ${(o.tenants * o.files).toLocaleString('en')} versions (${o.tenants} tenants × ${o.files}): ${mem.perVersion.toFixed(1)} B (INFO used_memory delta / versions)`,
    );
    say(out.at(-1)!);

    say(`polls: ${o.pollTenants} tenants with an empty listing, every 5 s, for ${o.pollSeconds} s`);
    const empty = new Map<string, SyntheticSource>();
    for (let t = 0; t < o.pollTenants; t++)
      empty.set(`e-${t}`, makeSyntheticSource({ files: 0, password: 'p' }));
    const sched = await pollLoad(server.url, redis, 'sim-sched', empty, 5_000, o.pollSeconds);
    const perPoll = (r: typeof sched) => ((r.daemonCpu + r.redisCpu) * 1000) / Math.max(1, r.polls);
    out.push(
      `poll scheduling (empty listing): ${sched.polls} polls in ${sched.seconds} s, daemon ${sched.daemonCpu.toFixed(1)} s + Redis ${sched.redisCpu.toFixed(1)} s CPU = ${perPoll(sched).toFixed(2)} ms per poll → ${((perPoll(sched) * 10_000) / 60_000).toFixed(2)} cores for 10,000 tenants polled once a minute; ${sched.clients} Redis connections (one poller process + the bench)`,
    );
    say(out.at(-1)!);

    say(
      `polls: the ${o.tenants} tenants of ${o.files} synced files each, every 10 s, for ${o.pollSeconds} s`,
    );
    const full = await pollLoad(server.url, redis, 'sim', mem.sources, 10_000, o.pollSeconds);
    out.push(
      `no-change poll of ${o.files} files: ${full.polls} polls in ${full.seconds} s, daemon ${full.daemonCpu.toFixed(1)} s + Redis ${full.redisCpu.toFixed(1)} s CPU = ${perPoll(full).toFixed(1)} ms per poll → ${((perPoll(full) * 10_000) / 60_000).toFixed(1)} cores for 10,000 such tenants polled once a minute`,
    );
    say(out.at(-1)!);

    say(`queue alone: ${o.queueJobs} jobs`);
    const q = await queueAlone(redis, 'sim-queue', o.queueJobs);
    out.push(
      `queue alone: ${q.jobs} jobs added (${q.addSeconds.toFixed(1)} s) and completed by a no-op worker in ${q.seconds.toFixed(1)} s = ${q.perSecond.toFixed(0)} jobs/s; ${q.cpuPerJobMs.toFixed(2)} ms bench CPU + ${q.redisCpuPerJobMs.toFixed(2)} ms Redis CPU per job; job hashes left after completion: ${q.leftInRedis}`,
    );
    say(out.at(-1)!);
  } finally {
    await redis.quit();
    await server.stop();
  }

  if (o.clusterTenants > 0) {
    say(`cluster: ${o.clusterTenants} tenants × ${o.files} files on a 3-master Redis Cluster`);
    const cluster = await startRedisCluster();
    const client = new Cluster(
      cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
      {
        redisOptions: { maxRetriesPerRequest: null },
      },
    );
    try {
      const mem = await memoryPerVersion(client, 'sim', o.clusterTenants, o.files);
      const keys = await cluster.keysPerNode();
      out.push(
        `Redis Cluster (3 masters): ${mem.perVersion.toFixed(1)} B per synced version (${(o.clusterTenants * o.files).toLocaleString('en')} versions, used_memory summed over the masters); keys per master ${keys.join(' / ')}`,
      );
      say(out.at(-1)!);
    } finally {
      await client.quit();
      await cluster.stop();
    }
  }
  console.log(`\n${out.map((l) => `- ${l}`).join('\n')}`);
}
