/**
 * One measured run of one tool over one corpus, with the readings around it: the tool's own CPU and
 * peak RSS, s3rver's and Redis's CPU, the machine's CPU use, and the most FTP sessions seen at once.
 * Every run is checked afterwards (every object present with its size) and its objects are removed
 * from s3rver's disk so that later runs do not pay for them.
 */
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { makeS3Client, makeS3Store } from '../../src/adapters/s3.js';
import { parseConfig } from '../../src/config.js';
import type { DaemonSpec } from '../daemon-child.js';
import type { LimitSpec } from '../limit-child.js';
import { type Message, startChild } from './child.js';
import { type Corpus, parallel } from './corpus.js';
import { awsEnv, type BenchEnv, redisCpu, s3rverCpu, VELA_TOKEN } from './env.js';
import { busyShare, machineCpu, sampleFtpSessions } from './proc.js';
import { runRclone } from './rclone.js';
import { commandStats, diffStats } from './redis-count.js';

/** 'ftp-sync (ref)': the daemon of another checkout (`--ref=DIR`), measured in the same rounds. */
export type Tool = 'ftp-sync' | 'ftp-sync (ref)' | 'rclone' | 'ftp-read' | 's3-write';

export interface Sample {
  tool: Tool;
  corpus: string;
  round: number;
  wallMs: number;
  /** CPU seconds of the tool's process(es) over the run. */
  cpuSeconds: number;
  /** Peak RSS of the tool's process (the sum of the processes' peaks when there are several). */
  maxRssKiB: number;
  files: number;
  bytes: number;
  s3rverCpuSeconds: number;
  redisCpuSeconds: number;
  /** Share of the whole machine's CPU (all cores) in use during the run. */
  machineBusy: number;
  ftpSessions: number;
  /** Redis commands run during the run (INFO commandstats; script-internal commands included). */
  redisCommands: number;
  /** The same by command name, most frequent first. */
  redisByCommand: string;
  /** ftp-sync: CPU seconds of its process start (node, modules, config, first polls), not counted. */
  startupCpuSeconds?: number;
}

const tag = (s: string) => s.replace(/[^a-z0-9-]/g, '');

async function around<T extends { wallMs: number; cpuSeconds: number; maxRssKiB: number }>(
  env: BenchEnv,
  fn: () => Promise<T>,
): Promise<Omit<Sample, 'tool' | 'corpus' | 'round' | 'files' | 'bytes'>> {
  const [s3a, ra, ca] = await Promise.all([s3rverCpu(env), redisCpu(env), commandStats(env.admin)]);
  const m0 = machineCpu();
  const sessions = sampleFtpSessions();
  const r = await fn();
  const ftpSessions = sessions.stop();
  const m1 = machineCpu();
  const [s3b, rb, cb] = await Promise.all([s3rverCpu(env), redisCpu(env), commandStats(env.admin)]);
  const commands = diffStats(ca, cb);
  return {
    wallMs: r.wallMs,
    cpuSeconds: r.cpuSeconds,
    maxRssKiB: r.maxRssKiB,
    s3rverCpuSeconds: s3b - s3a,
    redisCpuSeconds: rb - ra,
    machineBusy: busyShare(m0, m1),
    ftpSessions,
    redisCommands: [...commands.values()].reduce((a, b) => a + b, 0),
    redisByCommand: [...commands]
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`)
      .join(', '),
  };
}

/**
 * Counts the objects (and bytes) under `prefix` on s3rver's disk, then removes them; on RGW, by
 * listing and deleting them through S3.
 */
export async function checkAndClear(
  env: BenchEnv,
  prefixes: string[],
): Promise<{ files: number; bytes: number }> {
  if (!env.s3.dataDir) return checkAndClearS3(env, prefixes);
  const dataDir = env.s3.dataDir;
  let files = 0;
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('._S3rver_object')) {
        files++;
        bytes += (await stat(p)).size;
      }
    }
  };
  for (const prefix of prefixes) {
    await walk(join(dataDir, prefix));
    await rm(join(dataDir, prefix), { recursive: true, force: true });
  }
  return { files, bytes };
}

async function checkAndClearS3(env: BenchEnv, prefixes: string[]) {
  const cfg = parseConfig(
    {
      s3: { bucket: env.s3.bucket, endpoint: env.s3.endpoint, forcePathStyle: true },
      vela: { enabled: false },
    },
    {},
  ).s3;
  const client = makeS3Client(cfg, {
    credentials: { accessKeyId: env.s3.accessKeyId, secretAccessKey: env.s3.secretAccessKey },
  });
  try {
    const store = makeS3Store(cfg, client);
    const keys: string[] = [];
    let bytes = 0;
    for (const prefix of prefixes) {
      // As a directory on s3rver's disk: the keys under `prefix/`.
      for await (const o of store.list(`${prefix}/`)) {
        keys.push(o.key);
        bytes += o.size;
      }
    }
    await parallel(keys, 8, (Key) => client.send(new DeleteObjectCommand({ Bucket: env.s3.bucket, Key })));
    return { files: keys.length, bytes };
  } finally {
    client.destroy();
  }
}

function expectComplete(what: string, c: Corpus, got: { files: number; bytes: number }) {
  if (got.files !== c.files.length || got.bytes !== c.bytes) {
    throw new Error(
      `${what} ${c.name}: S3 holds ${got.files} objects / ${got.bytes} bytes, expected ${c.files.length} / ${c.bytes}`,
    );
  }
}

export interface RunOptions {
  round: number;
  /** FTP connections (per tenant) and concurrent uploads (per tenant). */
  connections: number;
  logLevel?: string;
  /** Directory for CPU profiles of ftp-sync's timed window (`--profile`). */
  profileDir?: string;
  /** Extra node flags for the ftp-sync process (`--node-args=...`, for experiments). */
  nodeArgs?: string[];
  /** Settings of the `s3:` block other than the defaults (the memory check's streamed variant). */
  s3?: Record<string, unknown>;
  /** Distinguishes runs of the same corpus with other settings (org names, logs). */
  variant?: string;
}

export function daemonConfig(
  env: BenchEnv,
  opts: {
    prefix: string;
    tenants: { org: string; dir: string }[];
    connections: number;
    concurrency: number;
    s3?: Record<string, unknown>;
  },
  logLevel = 'info',
): Record<string, unknown> {
  return {
    redis: { url: env.redis.url, prefix: opts.prefix },
    s3: { bucket: env.s3.bucket, endpoint: env.s3.endpoint, forcePathStyle: true, ...opts.s3 },
    vela: { url: env.vela.url, token: VELA_TOKEN },
    defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: opts.connections },
    worker: { concurrency: opts.concurrency },
    log: { level: logLevel },
    tenants: opts.tenants.map((t) => ({
      org: t.org,
      ftp: { host: '127.0.0.1', port: env.ftp.port, secure: false, user: 'anonymous', password: 'bench@' },
      dirs: [`/${t.dir}`],
      metadata: { defaultEmail: 'agent@bench.example' },
    })),
  };
}

interface DaemonDone extends Message {
  type: string;
  wallMs: number;
  cpuSeconds: number;
  maxRssKiB: number;
  files: number;
  expected: number;
  counts: Record<string, number>;
}

/** ftp-sync: the real daemon in a child process (bench/daemon-child.ts), allocation check on. */
export async function runFtpSync(env: BenchEnv, c: Corpus, o: RunOptions): Promise<Sample> {
  const name = `r${o.round}-${tag(c.name)}${o.variant ? `-${o.variant}` : ''}`;
  const tenants = c.dirs.map((dir, i) => ({ org: c.dirs.length > 1 ? `${name}-${i}` : name, dir }));
  const spec: DaemonSpec = {
    mode: 'sync',
    config: daemonConfig(
      env,
      {
        prefix: `b-${name}`,
        tenants,
        connections: o.connections,
        // Twice the sessions (the daemon's default of 8 for 4): a job beyond the budget does its
        // checks (sync state, Vela) and then waits in-process for a session, as rclone's checkers
        // work beside its transfers. FTP sessions and uploads stay at `connections`: an upload only
        // runs while its job holds a session.
        concurrency: 2 * o.connections * tenants.length,
        s3: o.s3,
      },
      o.logLevel,
    ),
    directRedisUrl: env.redis.url,
    expect: Object.fromEntries(
      tenants.map((t) => [t.org, c.files.filter((f) => f.path.startsWith(`${t.dir}/`)).length]),
    ),
    ftp: { host: '127.0.0.1', port: env.ftp.port },
    profile: o.profileDir && join(o.profileDir, `${name}.cpuprofile`),
  };
  const specFile = join(env.work, 'specs', `${name}-ftp-sync.json`);
  await writeFile(specFile, JSON.stringify(spec));
  const child = startChild(join(env.build, 'bench', 'daemon-child.js'), [specFile], {
    env: awsEnv(env.s3),
    logFile: join(env.work, 'logs', `${name}-ftp-sync.log`),
    nodeArgs: o.nodeArgs ?? [],
  });
  try {
    const ready = await child.next<Message & { startupCpuSeconds: number }>('ready', 120_000);
    let done: DaemonDone | undefined;
    const r = await around(env, async () => {
      child.send({ type: 'go' });
      done = await child.next<DaemonDone>('done');
      return done;
    });
    child.send({ type: 'exit' });
    await child.exited;
    if (done && done.files !== done.expected) {
      throw new Error(
        `ftp-sync ${c.name}: ${done.files} of ${done.expected} files in sync state (jobs: ${JSON.stringify(done.counts)})`,
      );
    }
    const got = await checkAndClear(
      env,
      tenants.map((t) => t.org),
    );
    expectComplete('ftp-sync', c, got);
    await env.admin.flushall();
    return {
      tool: 'ftp-sync',
      corpus: c.name,
      round: o.round,
      files: got.files,
      bytes: got.bytes,
      startupCpuSeconds: ready.startupCpuSeconds,
      ...r,
    };
  } finally {
    await child.kill();
  }
}

/** rclone copy, one process per tenant directory, all at once. */
export async function runRcloneCorpus(
  env: BenchEnv,
  c: Corpus,
  o: RunOptions & { obscuredPass: string },
): Promise<Sample> {
  const name = `rc-r${o.round}-${tag(c.name)}`;
  const prefixes = c.dirs.map((_, i) => (c.dirs.length > 1 ? `${name}-${i}` : name));
  const r = await around(env, async () => {
    const t0 = performance.now();
    const runs = await Promise.all(
      c.dirs.map((dir, i) =>
        runRclone({
          ftp: { host: '127.0.0.1', port: env.ftp.port, obscuredPass: o.obscuredPass },
          s3: {
            endpoint: env.s3.endpoint,
            bucket: env.s3.bucket,
            accessKeyId: env.s3.accessKeyId,
            secretAccessKey: env.s3.secretAccessKey,
          },
          dir,
          prefix: prefixes[i]!,
          transfers: o.connections,
          checkers: o.connections,
          workDir: env.work,
        }),
      ),
    );
    return {
      wallMs: performance.now() - t0,
      cpuSeconds: runs.reduce((s, x) => s + x.cpuSeconds, 0),
      maxRssKiB: runs.reduce((s, x) => s + x.maxRssKiB, 0),
    };
  });
  const got = await checkAndClear(env, prefixes);
  expectComplete('rclone', c, got);
  return { tool: 'rclone', corpus: c.name, round: o.round, files: got.files, bytes: got.bytes, ...r };
}

/** The pipeline's halves alone (bench/limit-child.ts). */
export async function runLimit(
  env: BenchEnv,
  c: Corpus,
  mode: 'ftp-read' | 's3-write',
  o: RunOptions,
): Promise<Sample> {
  const prefix = `lim-r${o.round}-${tag(c.name)}`;
  const spec: LimitSpec = {
    mode,
    files: c.files,
    connections: o.connections * c.dirs.length,
    ftp: { host: '127.0.0.1', port: env.ftp.port },
    s3: {
      endpoint: env.s3.endpoint,
      bucket: env.s3.bucket,
      prefix,
      accessKeyId: env.s3.accessKeyId,
      secretAccessKey: env.s3.secretAccessKey,
    },
    root: env.ftpRoot,
  };
  const specFile = join(env.work, 'specs', `${prefix}-${mode}.json`);
  await writeFile(specFile, JSON.stringify(spec));
  const child = startChild(join(env.build, 'bench', 'limit-child.js'), [specFile], {
    logFile: join(env.work, 'logs', `${prefix}-${mode}.log`),
  });
  try {
    await child.next('ready', 60_000);
    const r = await around(env, async () => {
      child.send({ type: 'go' });
      return child.next<{ type: string; wallMs: number; cpuSeconds: number; maxRssKiB: number }>('done');
    });
    child.send({ type: 'exit' });
    await child.exited;
    if (mode === 's3-write') expectComplete('s3-write', c, await checkAndClear(env, [prefix]));
    return { tool: mode, corpus: c.name, round: o.round, files: c.files.length, bytes: c.bytes, ...r };
  } finally {
    await child.kill();
  }
}
