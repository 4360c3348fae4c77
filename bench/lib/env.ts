/**
 * Everything the benchmark runs against, on loopback: redis-server, Debian's vsftpd serving the
 * corpora anonymously, s3rver (through the test harness) in a process of its own — or Ceph's RADOS
 * Gateway (test/support/rgw.ts) — and the Vela stand-in. The measured programs are compiled once (tsc, no type check) so that they run as plain
 * Node, as in production, rather than through tsx's loader.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startVelaStandin, type VelaStandin } from '../../src/standin/vela-standin.js';
import { type RedisServer, startRedis } from '../../test/support/redis.js';
import { type Rgw, startRgw } from '../../test/support/rgw.js';
import { startVsftpd, type VsftpdServer } from '../../test/support/vsftpd.js';
import { type Child, startChild } from './child.js';

export const VELA_TOKEN = 'bench-vela-token';

/**
 * The Node flags the Docker image runs the daemon with (its ENTRYPOINT, between `node` and the
 * script): the benchmark measures the daemon as deployed. One source of truth, the Dockerfile.
 */
export function imageNodeFlags(project: string): string[] {
  const text = readFileSync(join(project, 'Dockerfile'), 'utf8');
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(text)?.[1];
  if (!entry) throw new Error('Dockerfile: no ENTRYPOINT [...] line');
  const argv = JSON.parse(entry) as string[];
  const node = argv.indexOf('node');
  const script = argv.findIndex((a) => a.endsWith('cli.js'));
  if (node < 0 || script < node)
    throw new Error(`Dockerfile: ENTRYPOINT does not run node …cli.js: ${entry}`);
  return argv.slice(node + 1, script);
}

/** The S3 server the benchmark writes to: s3rver (default) or Ceph's RADOS Gateway (`--store=rgw`). */
export type StoreKind = 's3rver' | 'rgw';

export function storeArg(argv: string[]): StoreKind {
  const v = argv.find((a) => a.startsWith('--store='))?.slice('--store='.length) ?? 's3rver';
  if (v !== 's3rver' && v !== 'rgw') throw new Error(`--store=${v}: s3rver or rgw`);
  return v;
}

export interface BenchS3 {
  kind: StoreKind;
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** s3rver's process (its CPU is read) and the bucket's directory on disk. */
  child?: Child;
  dataDir?: string;
  rgw?: Rgw;
}

/** The AWS_* variables a child process signs its S3 requests with. */
export const awsEnv = (s3: BenchS3) => ({
  AWS_ACCESS_KEY_ID: s3.accessKeyId,
  AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  AWS_REGION: 'us-east-1',
});

export interface BenchEnv {
  /** Scratch directory of this run (corpora, s3rver's files, logs); removed by `stop()`. */
  work: string;
  ftpRoot: string;
  /** The compiled project (`<build>/bench/*.js`, `<build>/src/**`). */
  build: string;
  redis: RedisServer;
  /** A client of the benchmark itself (INFO, FLUSHALL, preparing state). */
  admin: Redis;
  ftp: VsftpdServer;
  s3: BenchS3;
  vela: VelaStandin;
  stop(): Promise<void>;
}

/** The programs the benchmark runs as child processes; tsc compiles them and what they import. */
const ENTRIES = ['bench/daemon-child.ts', 'bench/limit-child.ts', 'bench/s3-child.ts'];

/**
 * Compiles the child programs and their imports (src/, test/support) into `<project>/.tmp/bench-build`
 * (node_modules resolve from there). Only their import graph, not the whole tsconfig: files being
 * edited elsewhere in the tree do not matter.
 */
export async function compile(project: string): Promise<string> {
  const out = join(project, '.tmp', 'bench-build');
  await rm(out, { recursive: true, force: true });
  const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc');
  const options = ['--noCheck', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext'];
  options.push(
    '--moduleResolution',
    'nodenext',
    '--esModuleInterop',
    '--resolveJsonModule',
    '--types',
    'node',
  );
  options.push('--rootDir', project, '--outDir', out);
  await promisify(execFile)(process.execPath, [tsc, ...options, ...ENTRIES.map((e) => join(project, e))], {
    cwd: project,
  }).catch((err: { stdout?: string; message: string }) => {
    throw new Error(`compiling for the benchmark failed: ${err.stdout || err.message}`);
  });
  return out;
}

export async function startEnv(
  build: string,
  opts: {
    keep?: boolean;
    store?: StoreKind;
    /** RGW: bytes the run writes in all (its memstore keeps deleted data until garbage collection). */
    storeBytes?: number;
  } = {},
): Promise<BenchEnv> {
  const work = await mkdtemp(join(tmpdir(), 'ftp-sync-bench-'));
  await chmod(work, 0o755);
  const ftpRoot = join(work, 'ftp');
  const s3Tmp = join(work, 's3');
  await mkdir(ftpRoot, { mode: 0o755 });
  await mkdir(s3Tmp);
  await mkdir(join(work, 'logs'));
  await mkdir(join(work, 'specs'));
  const stops: (() => Promise<unknown>)[] = [
    async () => (opts.keep ? console.log(`kept ${work}`) : rm(work, { recursive: true, force: true })),
  ];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    const redis = await startRedis();
    stops.push(() => redis.stop());
    const admin = new Redis(redis.url, { maxRetriesPerRequest: null });
    stops.push(async () => admin.disconnect());
    const ftp = await startVsftpd({ root: ftpRoot });
    stops.push(() => ftp.stop());
    let s3: BenchS3;
    if (opts.store === 'rgw') {
      // Ceph's RADOS Gateway (test/support/rgw.ts): its own processes (mon, memstore OSD, radosgw).
      const rgw = await startRgw({
        bucket: 'calls',
        memstoreBytes: Math.max(2 * 2 ** 30, (opts.storeBytes ?? 0) * 1.25),
      });
      stops.push(() => rgw.stop());
      s3 = {
        kind: 'rgw',
        endpoint: rgw.endpoint,
        bucket: 'calls',
        accessKeyId: rgw.accessKeyId,
        secretAccessKey: rgw.secretAccessKey,
        rgw,
      };
    } else {
      // s3rver in its own process; TMPDIR puts its files where the benchmark can check and clear them.
      const child = startChild(join(build, 'bench', 's3-child.js'), [], {
        env: { TMPDIR: s3Tmp },
        logFile: join(work, 'logs', 's3rver.log'),
      });
      stops.push(() => child.kill());
      const ready = await child.next<{ type: string; endpoint: string; bucket: string }>('ready', 60_000);
      const [dir] = await readdir(s3Tmp);
      s3 = {
        kind: 's3rver',
        endpoint: ready.endpoint,
        bucket: ready.bucket,
        accessKeyId: 'S3RVER',
        secretAccessKey: 'S3RVER',
        child,
        dataDir: join(s3Tmp, dir!, ready.bucket),
      };
    }
    const vela = await startVelaStandin({ token: VELA_TOKEN, defaultAllocation: { status: 'within' } });
    stops.push(() => vela.close());
    return {
      work,
      ftpRoot,
      build,
      redis,
      admin,
      ftp,
      s3,
      vela,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** CPU seconds the S3 server has used so far: s3rver's process, or RGW's daemons. */
export async function s3rverCpu(env: BenchEnv): Promise<number> {
  if (env.s3.rgw) return env.s3.rgw.cpuSeconds();
  if (!env.s3.child) return 0;
  env.s3.child.send({ type: 'usage' });
  const m = await env.s3.child.next<{ type: string; cpu: NodeJS.CpuUsage }>('usage', 10_000);
  return (m.cpu.user + m.cpu.system) / 1e6;
}

/** CPU seconds redis-server has used so far. */
export async function redisCpu(env: BenchEnv): Promise<number> {
  const info = await env.admin.info('cpu');
  const get = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return get('used_cpu_sys') + get('used_cpu_user');
}
