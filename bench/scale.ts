/**
 * `npm run bench:scale [-- --files=1000 --tenants=10 --size=51200 --workers=1,2,4 --concurrency=8
 * --max-connections=2 --memory-files=100000 --rtt=0]`
 *
 * 1. Throughput by number of worker processes: the same corpus (default 1,000 × 50 KiB over 10
 *    tenants) synced by 1, 2 and 4 `ftp-sync start --role worker` processes against one Redis, one
 *    in-process FTP server and a fresh s3rver per run. The jobs are added in one go once every worker
 *    is up; the time runs from there to the last completed job. CPU seconds per part show where the
 *    limit is.
 * 2. Redis memory per tracked file: the sync-state records the runs wrote, copied to many paths of
 *    one tenant (as a large tenant's hash is encoded), measured with INFO memory and MEMORY USAGE;
 *    plus what a retained completed job costs (kept `worker.keepCompleted`, default one day).
 *
 * With `--sim [--tenants=100 --files=10000 --poll-tenants=1000 --poll-seconds=30 --queue-jobs=20000
 * --cluster-tenants=20]` it runs bench/sim.ts instead: many tenants by simulation (synthetic sources,
 * no FTP server) — Redis memory per version on one server and on a 3-master cluster, poll CPU per
 * tenant, the queue's own throughput.
 *
 * Needs redis-server on PATH (or REDIS_URL). Not part of any test suite; prints two tables.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { connectFtp } from '../src/adapters/ftp.js';
import { makeRedisState } from '../src/adapters/redis-state.js';
import { parseConfig } from '../src/config.js';
import { makeEnqueue } from '../src/queue/enqueue.js';
import { SYNC_QUEUE } from '../src/queue/jobs.js';
import { walk } from '../src/sync/walk.js';
import type { RemoteFile } from '../src/types.js';
import { type Corpus, daemonConfig, listObjects, makeCorpus, passwordOf } from '../test/scale/corpus.js';
import { waitFor } from '../test/scale/helpers.js';
import { tempDir } from '../test/support/fs.js';
import {
  type DaemonProcess,
  spawnDaemon,
  started as startedLog,
  writeConfigFile,
} from '../test/support/process.js';
import { startRedis } from '../test/support/redis.js';
import { startS3 } from '../test/support/s3.js';

const { values: args } = parseArgs({
  options: {
    files: { type: 'string', default: '1000' },
    tenants: { type: 'string', default: '10' },
    size: { type: 'string', default: String(50 * 1024) },
    workers: { type: 'string', default: '1,2,4' },
    concurrency: { type: 'string', default: '8' },
    'max-connections': { type: 'string', default: '2' },
    'memory-files': { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '1' },
    /**
     * Files per tenant synced before the timed window (not counted): every worker process runs the
     * pipeline's code until it is compiled and its sessions are open, as in a daemon that has been up
     * a while. 0 measures cold processes (each replica pays its own warm-up inside the window).
     */
    warmup: { type: 'string', default: '30' },
    /** `tenant`: each tenant's jobs added together, as a poll adds them; `interleaved`: round-robin. */
    order: { type: 'string', default: 'tenant' },
    /**
     * Milliseconds every FTP command waits before the server handles it: a far server, one round trip
     * away (the customer's FTP server in another region). 0: loopback, where the CPU is the limit.
     */
    rtt: { type: 'string', default: '0' },
    /** Many tenants by simulation instead (bench/sim.ts): no FTP server, synthetic listings. */
    sim: { type: 'boolean', default: false },
    'poll-tenants': { type: 'string', default: '1000' },
    'poll-seconds': { type: 'string', default: '30' },
    'queue-jobs': { type: 'string', default: '20000' },
    'cluster-tenants': { type: 'string', default: '20' },
    /**
     * `worker.groupFiles`: small files per group job, as a poll adds them (spread over each tenant's
     * maxConnections). 1: a job per file (as before group jobs).
     */
    'group-files': { type: 'string', default: '50' },
  },
});
const FILES = Number(args.files);
const TENANTS = Number(args.tenants);
const SIZE = Number(args.size);
const WORKERS = args.workers.split(',').map(Number);
/**
 * `--concurrency=auto`: as docs/scaling.md recommends, replicas × worker.concurrency = Σ maxConnections
 * (each of n processes gets tenants × maxConnections / n); else the same number for every process.
 */
const concurrencyFor = (workers: number) =>
  args.concurrency === 'auto'
    ? Math.max(1, Math.floor((TENANTS * MAX_CONNECTIONS) / workers))
    : Number(args.concurrency);
const MAX_CONNECTIONS = Number(args['max-connections']);
const MEMORY_FILES = Number(args['memory-files']);
const ROUNDS = Number(args.rounds);
const RTT = Number(args.rtt);
const WARMUP = Number(args.warmup);
/** Warm-up files are the corpus's last WARMUP of each tenant (`call-NNNN` numbered from perTenant). */
const isWarmup = (path: string, perTenant: number) =>
  Number(/call-(\d+)\./.exec(path)?.[1] ?? 0) >= perTenant;
const ORDER = args.order === 'interleaved' ? 'interleaved' : 'tenant';
const GROUP_FILES = Number(args['group-files']);
const MiB = 1024 * 1024;
const started = Date.now();
const say = (msg: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}`);

interface Row {
  workers: number;
  seconds: number;
  filesPerSec: number;
  mibPerSec: number;
  workerCpu: number;
  harnessCpu: number;
  redisCpu: number;
  machineBusy: number;
  /** CPU seconds of everything else on the machine during the run (other programs: noise). */
  otherCpu: number;
  /** How often a job was taken by a worker, on average: 1 is ideal; more is no-slot churn. */
  pickups: number;
  /** Jobs that carried the files (fewer than the files with groups). */
  jobs: number;
  /** FTP logins (PASS) the server saw during the run: sessions opened, over all processes. */
  logins: number;
  /**
   * Share of the connection budget's time (tenants × maxConnections × the window) spent transferring:
   * the `synced` log lines' durations over the window. What is left is slots idle between files.
   */
  slotUse: number;
}

/** Milliseconds spent transferring (the `synced` lines' `ms`) by files that finished after `since`. */
function transferMs(procs: DaemonProcess[], since: number): number {
  let ms = 0;
  for (const p of procs)
    for (const l of p.lines() as { msg: string; time?: string; ms?: number }[])
      if (l.msg === 'synced' && l.time && Date.parse(l.time) >= since) ms += l.ms ?? 0;
  return ms;
}

/** user + system CPU seconds of a process (Linux /proc; 0 once it is gone). */
function procCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine. */
function machine(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1, 9).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - (cpu[3] ?? 0) - (cpu[4] ?? 0), total };
}

async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const get = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return get('used_cpu_user') + get('used_cpu_sys');
}

async function listing(
  corpus: Corpus,
  config: ReturnType<typeof parseConfig>,
): Promise<Map<string, RemoteFile[]>> {
  const out = new Map<string, RemoteFile[]>();
  for (const t of config.tenants) {
    const session = await connectFtp(t, { user: t.org, password: passwordOf(t.org) });
    try {
      const { files } = await walk(session, { dirs: t.dirs, include: t.include, exclude: t.exclude });
      out.set(t.org, files);
    } finally {
      session.close();
    }
  }
  if ([...out.values()].reduce((n, l) => n + l.length, 0) !== corpus.files.size)
    throw new Error('the listing does not match the corpus');
  return out;
}

async function runOnce(
  workers: number,
  ctx: { dir: string; corpus: Corpus; redisUrl: string; redis: Redis; perTenant: number },
): Promise<{ row: Row; prefix: string }> {
  const s3 = await startS3();
  const prefix = `bench-scale-${workers}-${randomBytes(3).toString('hex')}`;
  const doc = daemonConfig({
    redis: { url: ctx.redisUrl, prefix },
    s3,
    corpus: ctx.corpus,
    extra: {
      defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: MAX_CONNECTIONS },
      // Completed jobs kept for the run: the bench counts them (and how often each was picked up).
      worker: { concurrency: concurrencyFor(workers), keepCompleted: '1h', groupFiles: GROUP_FILES },
      log: { level: 'info' }, // as in production; 'ftp-sync started' is how a child says it is up
    },
  });
  const config = parseConfig(doc);
  const listed = await listing(ctx.corpus, config);
  const part = (warm: boolean) =>
    new Map([...listed].map(([org, l]) => [org, l.filter((f) => isWarmup(f.path, ctx.perTenant) === warm)]));
  const files = part(false);
  const warm = part(true);
  const warmCount = [...warm.values()].reduce((n, l) => n + l.length, 0);
  const configFile = await writeConfigFile(ctx.dir, doc, `bench-${workers}.yaml`);
  const procs: DaemonProcess[] = [];
  const queue = new Queue(SYNC_QUEUE, { connection: ctx.redis, prefix });
  try {
    for (let i = 0; i < workers; i++)
      procs.push(spawnDaemon({ name: `worker-${i}`, config: configFile, role: 'worker' }));
    // Several processes loading tsx at once on a busy machine take longer than a test would wait.
    await Promise.all(procs.map((p) => startedLog(p, 180_000)));
    // As a poll adds them: each tenant's small files in groups spread over its slots.
    const add = makeEnqueue(queue, config, ctx.redis);
    const enqueue = (org: string, list: RemoteFile[]) => add(org, list, { connections: MAX_CONNECTIONS });
    const state = makeRedisState(ctx.redis, prefix);
    // Files synced (sync state), not jobs: a group job carries many.
    const completed = async (n: number) => {
      const c = await queue.getJobCounts('failed');
      if (c.failed) throw new Error(`${c.failed} job(s) failed`);
      let files = 0;
      for (const org of ctx.corpus.orgs) files += (await state.info(org)).files;
      return files === n;
    };
    /** Pickups of the completed jobs, and how many jobs. */
    const pickedUp = async () => {
      let started = 0;
      const total = (await queue.getJobCounts('completed')).completed ?? 0;
      for (let i = 0; i < total; i += 500)
        for (const j of await queue.getJobs(['completed'], i, i + 499)) started += j.attemptsStarted;
      return { started, jobs: total };
    };
    if (warmCount > 0) {
      await Promise.all([...warm].map(([org, list]) => enqueue(org, list)));
      await waitFor('every warm-up job completed', () => completed(warmCount), 600_000, 50);
    }
    const warmPickups = await pickedUp();
    const cpu0 = procs.map((p) => procCpu(p.pid));
    const harness0 = process.cpuUsage();
    const redis0 = await redisCpu(ctx.redis);
    const logins0 = ctx.corpus.ftp.loginAttempts().length;
    const m0 = machine();
    const wall0 = Date.now();
    const t0 = performance.now();
    if (ORDER === 'tenant') await Promise.all([...files].map(([org, list]) => enqueue(org, list)));
    else {
      const lists = [...files];
      const longest = Math.max(...lists.map(([, l]) => l.length));
      for (let i = 0; i < longest; i++)
        for (const [org, list] of lists) if (list[i]) await enqueue(org, [list[i]!]);
    }
    await waitFor('every job completed', () => completed(warmCount + FILES), 600_000, 50);
    const seconds = (performance.now() - t0) / 1000;
    const m1 = machine();
    const workerCpu = procs.reduce((n, p, i) => n + procCpu(p.pid) - cpu0[i]!, 0);
    const h = process.cpuUsage(harness0);
    const rcpu = (await redisCpu(ctx.redis)) - redis0;
    const ours = workerCpu + (h.user + h.system) / 1e6 + rcpu;
    const picked = await pickedUp();
    const started = picked.started - warmPickups.started;
    const jobs = picked.jobs - warmPickups.jobs;
    const objects = await listObjects(s3, ctx.corpus.orgs);
    if (objects.length !== FILES + warmCount)
      throw new Error(`${objects.length} objects, expected ${FILES + warmCount}`);
    return {
      prefix,
      row: {
        workers,
        seconds,
        filesPerSec: FILES / seconds,
        mibPerSec: (FILES * SIZE) / MiB / seconds,
        workerCpu,
        harnessCpu: (h.user + h.system) / 1e6,
        redisCpu: rcpu,
        machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
        otherCpu: Math.max(0, (m1.busy - m0.busy) / 100 - ours),
        pickups: started / Math.max(1, jobs),
        jobs,
        logins: ctx.corpus.ftp.loginAttempts().length - logins0,
        slotUse: transferMs(procs, wall0) / (TENANTS * MAX_CONNECTIONS * seconds * 1000),
      },
    };
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.allSettled(procs.map((p) => p.waitExit(60_000)));
    await queue.close();
    await s3.stop();
  }
}

/**
 * Bytes per tracked file: `count` versions under realistic paths written to one tenant through the
 * state adapter (as workers write them); INFO used_memory before/after, and the buckets' encodings.
 */
async function measureMemory(redis: Redis, count: number) {
  const prefix = `bench-mem-${randomBytes(3).toString('hex')}`;
  const org = 'acme-contact-centre';
  const state = makeRedisState(redis, prefix);
  const used = async () => {
    await redis.call('MEMORY', 'PURGE').catch(() => {});
    return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  };
  const before = await used();
  let pathBytes = 0;
  for (let i = 0; i < count; i += 1000) {
    await Promise.all(
      Array.from({ length: Math.min(1000, count - i) }, (_, k) => {
        const j = i + k;
        // e.g. calls/2024-03-14/agent-017/2024-03-14_101523_000123.wav (52 characters)
        const day = `2024-${String(1 + (j % 12)).padStart(2, '0')}-${String(1 + (j % 28)).padStart(2, '0')}`;
        const path = `calls/${day}/agent-${String(j % 100).padStart(3, '0')}/${day}_${String(j % 240000).padStart(6, '0')}_${String(j).padStart(6, '0')}.wav`;
        pathBytes += path.length;
        return state.markSynced(org, path, {
          size: 50_000 + j,
          mtime: new Date(Date.UTC(2024, 2, 14) + j * 1000).toISOString(),
          key: `${org}/${path}`,
          syncedAt: Date.now(),
        });
      }),
    );
  }
  const after = await used();
  const encodings = new Set<string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:{${org}}:sv:*`, 'COUNT', 1000);
    for (const k of keys) encodings.add(String(await redis.object('ENCODING', k)));
    cursor = next;
  } while (cursor !== '0');
  await state.clear(org);
  return {
    count,
    encoding: [...encodings].join('+'),
    infoPerFile: (after - before) / count,
    pathBytes: pathBytes / count,
  };
}

/**
 * What the run's retained completed jobs cost: MEMORY USAGE of the job hashes and the completed set
 * per job. The queue's event stream is left out: BullMQ caps it (about 10,000 events), a fixed cost.
 */
async function measureJobs(redis: Redis, prefix: string): Promise<{ perJob: number; events: number }> {
  let jobs = 0;
  let events = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:sync:*`, 'COUNT', 1000);
    for (const k of keys) {
      const bytes = Number(await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0'));
      if (k.endsWith(':events')) events += bytes;
      else jobs += bytes;
    }
    cursor = next;
  } while (cursor !== '0');
  return { perJob: jobs / (FILES + WARMUP * TENANTS), events };
}

const pad = (rows: string[][]) => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n');
};

async function main() {
  const external = process.env.REDIS_URL;
  const server = external ? undefined : await startRedis();
  const redisUrl = external ?? server!.url;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const dir = await tempDir('bench-scale');
  const prefixes: string[] = [];
  try {
    const perTenant = Math.ceil(FILES / TENANTS);
    say(`writing ${TENANTS} tenants × ${perTenant} files (+ ${WARMUP} to warm up) of ${SIZE} bytes`);
    const corpus = await makeCorpus(`${dir.path}/ftp`, {
      tenants: TENANTS,
      filesPerTenant: perTenant + WARMUP,
      size: () => SIZE,
    });
    if (RTT > 0) corpus.ftp.faults = { commandDelayMs: RTT };
    const samples = new Map<number, Row[]>(WORKERS.map((n) => [n, []]));
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        // Alternate the order between rounds so that drift on a shared machine hits every count alike.
        for (const n of round % 2 ? WORKERS : [...WORKERS].reverse()) {
          say(`round ${round}: ${n} worker process(es), concurrency ${concurrencyFor(n)} each`);
          const { row, prefix } = await runOnce(n, { dir: dir.path, corpus, redisUrl, redis, perTenant });
          prefixes.push(prefix);
          samples.get(n)!.push(row);
          say(`  ${row.filesPerSec.toFixed(1)} files/s in ${row.seconds.toFixed(1)} s`);
        }
      }
    } finally {
      await corpus.ftp.stop();
    }
    // The median run of each worker count (by files/s).
    const rows = WORKERS.map((n) => {
      const list = [...samples.get(n)!].sort((a, b) => a.filesPerSec - b.filesPerSec);
      return { ...list[Math.floor(list.length / 2)]!, all: list.map((r) => r.filesPerSec.toFixed(1)) };
    });
    const base = rows[0]!.filesPerSec;
    console.log(
      `\nThroughput: ${FILES} × ${(SIZE / 1024).toFixed(0)} KiB over ${TENANTS} tenants, jobs added ${ORDER === 'tenant' ? 'tenant by tenant (as polls add them)' : 'round-robin over tenants'}, ` +
        `maxConnections ${MAX_CONNECTIONS} per tenant (${TENANTS * MAX_CONNECTIONS} FTP sessions at most), ${GROUP_FILES > 1 ? `small files in group jobs of up to ${GROUP_FILES} (worker.groupFiles)` : 'a job per file (--group-files=1)'}, worker.concurrency ${args.concurrency === 'auto' ? `Σ maxConnections / workers (${WORKERS.map(concurrencyFor).join(', ')})` : args.concurrency}; ` +
        `${RTT > 0 ? `FTP server ${RTT} ms away (every command answered after ${RTT} ms). ` : ''}` +
        `${cpus().length} CPU(s), node ${process.version}; median of ${ROUNDS} round(s). ` +
        `${WARMUP ? `Warm workers: ${WARMUP * TENANTS} other files synced first, not timed. ` : 'Cold workers (--warmup=0). '}` +
        'Harness = this process: FTP server + s3rver. Slot use = time spent transferring / (tenants × maxConnections × seconds). ' +
        'Other CPU = everything else running on the machine meanwhile.\n',
    );
    console.log(
      pad([
        [
          'workers',
          'seconds',
          'files/s',
          'MiB/s',
          'speed-up',
          'worker CPU s',
          'harness CPU s',
          'redis CPU s',
          'other CPU s',
          'machine busy',
          'jobs',
          'pickups per job',
          'worker CPU ms per file',
          'FTP logins',
          'slot use',
          'files/s, every round',
        ],
        ...rows.map((r) => [
          String(r.workers),
          r.seconds.toFixed(1),
          r.filesPerSec.toFixed(1),
          r.mibPerSec.toFixed(2),
          `${(r.filesPerSec / base).toFixed(2)}×`,
          r.workerCpu.toFixed(1),
          r.harnessCpu.toFixed(1),
          r.redisCpu.toFixed(1),
          r.otherCpu.toFixed(1),
          `${(r.machineBusy * 100).toFixed(0)}%`,
          String(r.jobs),
          r.pickups.toFixed(1),
          ((1000 * r.workerCpu) / FILES).toFixed(2),
          String(r.logins),
          `${(r.slotUse * 100).toFixed(0)}%`,
          r.all.join(', '),
        ]),
      ]),
    );

    const last = prefixes.at(-1)!;
    say(`measuring sync-state memory with ${MEMORY_FILES} records`);
    const mem = await measureMemory(redis, MEMORY_FILES);
    const jobs = await measureJobs(redis, last);
    const perMillion = (b: number) => `${((b * 1e6) / MiB).toFixed(0)} MiB`;
    console.log(
      `\nRedis memory (redis-server ${(await redis.info('server')).match(/redis_version:(\S+)/)?.[1]}):\n`,
    );
    console.log(
      pad([
        ['what', 'bytes per file', 'per million files'],
        [
          `sync state, one tenant (${mem.count} files, buckets ${mem.encoding}): INFO used_memory delta`,
          mem.infoPerFile.toFixed(0),
          perMillion(mem.infoPerFile),
        ],
        [
          'a completed sync job, only when worker.keepCompleted is set (default: removed at once)',
          jobs.perJob.toFixed(0),
          perMillion(jobs.perJob),
        ],
      ]),
    );
    console.log(
      `\n(paths of ${mem.pathBytes.toFixed(0)} characters on average; the record adds its size, mtime and ` +
        'upload time packed, about 25 bytes. ' +
        `The sync queue's event stream adds a fixed ${(jobs.events / MiB).toFixed(1)} MiB at most.)`,
    );
  } finally {
    for (const p of prefixes) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${p}*`, 'COUNT', 1000);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    }
    await redis.quit();
    await server?.stop();
    await dir.cleanup();
  }
}

if (args.sim) {
  const { runSim } = await import('./sim.js');
  await runSim({
    tenants: Number(args.tenants === '10' ? '100' : args.tenants),
    files: Number(args.files === '1000' ? '10000' : args.files),
    pollTenants: Number(args['poll-tenants']),
    pollSeconds: Number(args['poll-seconds']),
    queueJobs: Number(args['queue-jobs']),
    clusterTenants: Number(args['cluster-tenants']),
  });
} else await main();
