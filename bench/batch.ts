/**
 * `npm run bench:batch [-- --size=MiB] [-- --rounds=N] [-- --entries=1,4] [-- --store=s3rver|rgw]`: zip
 * batch expansion against the S3 write rate alone and against the naive route, everything on loopback.
 *
 * The store: s3rver (default; one Node process serves the expansion's reads and writes both) or
 * Ceph's RADOS Gateway (`--store=rgw`, started by test/support/rgw.ts: a production-grade S3 with
 * daemons of its own, on the same cores).
 *
 * The archive: WAV-like recordings of about 3 MiB (stored, as Info-ZIP's `-n .wav` leaves them) and
 * deflated CSV call records, `--size` MiB in all (default 3,000: about 1,000 recordings, an archive
 * just under the 3 GiB `maxArchiveBytes`; 3,072 MiB of entries plus their headers is over it), put in
 * the store. Each round, in turns:
 *   - ftp-sync: the real daemon (bench/daemon-child.ts, batch mode, the Docker image's Node flags)
 *     expands it from S3 by ranged GETs; its peak RSS, the files it wrote under its TMPDIR (must be
 *     none) and the number of range GETs are read;
 *   - S3 write alone: ftp-sync's own S3 store puts the same entries from the page cache, 4 at once
 *     (the main bench's uploads) — the limit of the expansion;
 *   - naive: `unzip` of the archive (local, so the naive route is not charged the download) into a
 *     temp dir, then `rclone copy` of the folder with 4 transfers.
 * The ratio expansion / S3-alone is the figure to read on a shared machine (absolute speeds vary).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeS3Client, makeS3Store } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import type { BatchRecord } from '../src/ports/batches.js';
import type { DaemonSpec } from './daemon-child.js';
import { startChild } from './lib/child.js';
import { type BenchFile, type Corpus, MiB, parallel } from './lib/corpus.js';
import { awsEnv, type BenchEnv, compile, imageNodeFlags, s3rverCpu, startEnv, storeArg } from './lib/env.js';
import { checkAndClear, daemonConfig, runLimit } from './lib/measure.js';
import { RCLONE, TIME } from './lib/rclone.js';

const project = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const sizeMiB = Number(arg('size') ?? 3000);
const rounds = Number(arg('rounds') ?? 1);
/** `worker.batchEntries` of each expansion measured (`--entries=1,4`: the old one-by-one and the default). */
const entryCounts = (arg('entries') ?? '4').split(',').map(Number);
/** Concurrent uploads of the S3-alone and rclone runs (the main bench's 4). */
const UPLOADS = 4;
const store = storeArg(argv);
const command = `npm run bench:batch${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
const started = Date.now();
const say = (msg: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}`);
const ORG = 'zipbench';

/** A 44-byte RIFF/WAVE header (16-bit mono 8 kHz PCM) and random samples: does not deflate. */
function wav(size: number): Buffer {
  const b = randomBytes(size);
  b.write('RIFF', 0, 'latin1');
  b.writeUInt32LE(size - 8, 4);
  b.write('WAVEfmt ', 8, 'latin1');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(8000, 24);
  b.writeUInt32LE(16000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'latin1');
  b.writeUInt32LE(size - 44, 40);
  return b;
}

/** The archive's folder: recordings of 2.5–3.5 MiB and one CSV of call records per 100 of them. */
async function writeFolder(dir: string, totalMiB: number): Promise<BenchFile[]> {
  const files: BenchFile[] = [];
  let bytes = 0;
  let i = 0;
  const rows: string[] = [];
  const pending: { path: string; body: Buffer }[] = [];
  while (bytes < totalMiB * MiB) {
    const size = Math.round((2.5 + ((i * 7919) % 1000) / 1000) * MiB);
    const name = `rec-${String(i).padStart(5, '0')}.wav`;
    const day = String(1 + (i % 28)).padStart(2, '0');
    rows.push(`${name},agent${i % 50}@bench.example,2024-03-${day},${'x'.repeat(40)}`);
    pending.push({ path: `calls/d${Math.floor(i / 100)}/${name}`, body: wav(size) });
    bytes += size;
    i++;
    if (rows.length === 100 || bytes >= totalMiB * MiB) {
      const d = Math.floor((i - 1) / 100);
      pending.push({
        path: `calls/d${d}/calls-${d}.csv`,
        body: Buffer.from(`file,email,date_of_call,notes\n${rows.join('\n')}\n`),
      });
      rows.length = 0;
      await parallel(pending.splice(0), 4, async (f) => {
        await mkdir(dirname(join(dir, f.path)), { recursive: true });
        await writeFile(join(dir, f.path), f.body);
        files.push({ path: f.path, size: f.body.length });
      });
    }
  }
  return files;
}

async function timed(cmd: string, args: string[], env?: NodeJS.ProcessEnv, cwd?: string) {
  const out = join(os.tmpdir(), `zipbench-time-${process.hrtime.bigint()}.txt`);
  const t0 = performance.now();
  const code = await new Promise<number | null>((resolve) => {
    const p = spawn(TIME, ['-f', '%e %U %S %M', '-o', out, cmd, ...args], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: env ?? process.env,
      cwd,
    });
    p.on('exit', resolve);
  });
  const wallMs = performance.now() - t0;
  if (code !== 0) throw new Error(`${cmd} exited with ${code}`);
  const [, user = 0, sys = 0, rss = 0] = (await readFile(out, 'utf8')).trim().split(/\s+/).map(Number);
  await rm(out, { force: true });
  return { wallMs, cpuSeconds: user + sys, maxRssKiB: rss };
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!e.isDirectory()) n++;
  }
  return n;
}

interface Row {
  round: number;
  expansion: Record<number, Expansion>;
  s3Alone: { wallMs: number; readMs: number; storeCpu: number };
  naive: { unzipMs: number; rcloneMs: number; cpuSeconds: number; maxRssKiB: number };
}

interface Expansion {
  wallMs: number;
  /** CPU seconds of the S3 server (s3rver, or RGW's daemons) during the expansion. */
  storeCpu: number;
  cpuSeconds: number;
  maxRssKiB: number;
  tmpFiles: number;
  record: BatchRecord;
}

async function expand(env: BenchEnv, key: string, round: number, nodeArgs: string[], entries: number) {
  const name = `zip-r${round}-e${entries}`;
  await mkdir(join(env.ftpRoot, ORG), { recursive: true, mode: 0o755 });
  const config = daemonConfig(env, {
    prefix: `b-${name}`,
    tenants: [{ org: ORG, dir: ORG }],
    connections: 2,
    concurrency: 4,
  });
  (config.worker as Record<string, unknown>).batchEntries = entries;
  const spec: DaemonSpec = {
    mode: 'batch',
    batch: { org: ORG, key },
    config,
    directRedisUrl: env.redis.url,
    ftp: { host: '127.0.0.1', port: env.ftp.port },
    timeoutMs: 60 * 60_000,
  };
  const specFile = join(env.work, 'specs', `${name}.json`);
  await writeFile(specFile, JSON.stringify(spec));
  const tmp = join(env.work, `${name}-tmp`);
  await mkdir(tmp);
  const child = startChild(join(env.build, 'bench', 'daemon-child.js'), [specFile], {
    env: { ...awsEnv(env.s3), TMPDIR: tmp, TMP: tmp, TEMP: tmp },
    logFile: join(env.work, 'logs', `${name}.log`),
    nodeArgs,
  });
  try {
    await child.next('ready', 120_000);
    child.send({ type: 'go' });
    const done = await child.next<{
      type: string;
      wallMs: number;
      cpuSeconds: number;
      maxRssKiB: number;
      record: BatchRecord;
    }>('done');
    child.send({ type: 'exit' });
    await child.exited;
    await env.admin.flushall();
    return { ...done, tmpFiles: await countFiles(tmp) };
  } finally {
    await child.kill();
  }
}

async function main() {
  say('compiling (tsc, no type check) so the measured programs run as plain node');
  const build = await compile(project);
  say(`starting redis-server, vsftpd, ${store} and the Vela stand-in on 127.0.0.1`);
  // RGW keeps deleted objects' data until its garbage collection: room for everything the run writes
  // (the archive, each expansion, the S3-alone and naive copies).
  const storeBytes = sizeMiB * MiB * (1.1 + rounds * (entryCounts.length + 2) * 1.05);
  const env = await startEnv(build, { keep: argv.includes('--keep'), store, storeBytes });
  process.on('SIGINT', () => void env.stop().then(() => process.exit(130)));
  try {
    await bench(env);
  } finally {
    await env.stop();
  }
}

async function bench(env: BenchEnv) {
  // In the FTP root: the S3-write-alone child reads the entries from there.
  const src = env.ftpRoot;
  say(`writing ${sizeMiB} MiB of recordings and call records`);
  const files = await writeFolder(src, sizeMiB);
  const bytes = files.reduce((n, f) => n + f.size, 0);
  const zipFile = join(env.work, 'calls-export.zip');
  // Stored recordings (as phones' exports and `zip -n` leave audio), deflated call records.
  await promisify(execFile)('zip', ['-q', '-r', '-n', '.wav', zipFile, 'calls'], { cwd: src });
  const archiveBytes = (await stat(zipFile)).size;
  say(`archive: ${files.length} entries, ${(archiveBytes / MiB).toFixed(0)} MiB; putting it in S3`);
  const cfg = parseConfig(
    {
      s3: { bucket: env.s3.bucket, endpoint: env.s3.endpoint, forcePathStyle: true, idleTimeout: '10m' },
      vela: { enabled: false },
    },
    {},
  ).s3;
  const client = makeS3Client(cfg, {
    credentials: { accessKeyId: env.s3.accessKeyId, secretAccessKey: env.s3.secretAccessKey },
  });
  const key = `${ORG}/batches/calls-export.zip`;
  const reader = makeS3Store(cfg, client);
  await reader.put(key, createReadStream(zipFile), { size: archiveBytes, metadata: {} });
  const nodeArgs = imageNodeFlags(project);
  // --profile: a .cpuprofile of the expanding daemon (whole process) in bench/results/profiles.
  if (argv.includes('--profile'))
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${join(project, 'bench', 'results', 'profiles')}`);
  const corpus: Corpus = { name: 'zip-entries', label: 'zip entries', dirs: ['calls'], files, bytes };
  const rows: Row[] = [];
  const rcloneEnv: NodeJS.ProcessEnv = { ...process.env, RCLONE_CONFIG: '/dev/null' };
  delete rcloneEnv.AWS_CA_BUNDLE;

  for (let round = 1; round <= rounds; round++) {
    const expansion: Record<number, Expansion> = {};
    for (const entries of round % 2 ? entryCounts : [...entryCounts].reverse()) {
      const cpu0 = await s3rverCpu(env);
      const x = { ...(await expand(env, key, round, nodeArgs, entries)), storeCpu: 0 };
      x.storeCpu = (await s3rverCpu(env)) - cpu0;
      if (x.record.state !== 'done' || x.record.counts.synced !== files.length) {
        throw new Error(`the batch did not expand every entry: ${JSON.stringify(x.record)}`);
      }
      const got = await checkAndClear(env, [`${ORG}/batches/calls-export.zip`]);
      if (got.files !== files.length || got.bytes !== bytes) {
        throw new Error(
          `expansion: S3 holds ${got.files} objects / ${got.bytes} bytes, expected ${files.length} / ${bytes}`,
        );
      }
      say(
        `round ${round}: expansion, ${entries} at once: ${(x.wallMs / 1000).toFixed(1)} s (CPU ${x.cpuSeconds.toFixed(1)} s), ` +
          `${x.record.rangeGets} range GETs, ` +
          `${store} CPU ${x.storeCpu.toFixed(1)} s, peak RSS ${((x.maxRssKiB * 1024) / MiB).toFixed(0)} MiB, ${x.tmpFiles} files in its TMPDIR`,
      );
      expansion[entries] = x;
    }
    // The S3 write alone: the same entries, from the page cache, as many at once.
    const alone = await runLimit(env, { ...corpus, dirs: ['calls'] }, 's3-write', {
      round,
      connections: UPLOADS,
    });
    // The S3 read alone: the archive's bytes by ranged GETs of entry size, 4 at once (the store serves
    // the expansion's reads and writes both; on one loaded machine its CPU is shared by the two).
    const r0 = performance.now();
    const step = Math.ceil(archiveBytes / files.length);
    await parallel(
      files.map((_, i) => i * step),
      UPLOADS,
      async (start) => {
        for await (const _ of await reader.getRange(key, start, Math.min(archiveBytes, start + step))) {
          /* drained */
        }
      },
    );
    const readMs = performance.now() - r0;
    say(
      `round ${round}: S3 write alone ${(alone.wallMs / 1000).toFixed(1)} s (CPU ${alone.cpuSeconds.toFixed(1)} s, ` +
        `${store} CPU ${alone.s3rverCpuSeconds.toFixed(1)} s), ` +
        `S3 read alone ${(readMs / 1000).toFixed(1)} s`,
    );
    // Naive: unzip into a temp dir, then rclone copy of the folder.
    const out = join(env.work, `naive-r${round}`);
    await mkdir(out);
    const unzip = await timed('unzip', ['-q', zipFile, '-d', out]);
    const dst =
      `:s3,provider=Other,endpoint='${env.s3.endpoint}',access_key_id=${env.s3.accessKeyId},` +
      `secret_access_key=${env.s3.secretAccessKey},` +
      `region=us-east-1,force_path_style=true,no_check_bucket=true:${env.s3.bucket}/naive-r${round}`;
    const rc = await timed(
      RCLONE,
      ['copy', join(out, 'calls'), dst, '--transfers', String(UPLOADS), '--checkers', String(UPLOADS), '-q'],
      rcloneEnv,
    );
    const naiveGot = await checkAndClear(env, [`naive-r${round}`]);
    if (naiveGot.files !== files.length)
      throw new Error(`rclone: ${naiveGot.files} of ${files.length} objects`);
    await rm(out, { recursive: true, force: true });
    say(
      `round ${round}: naive unzip ${(unzip.wallMs / 1000).toFixed(1)} s + rclone ${(rc.wallMs / 1000).toFixed(1)} s`,
    );
    rows.push({
      round,
      expansion,
      s3Alone: { wallMs: alone.wallMs, readMs, storeCpu: alone.s3rverCpuSeconds },
      naive: {
        unzipMs: unzip.wallMs,
        rcloneMs: rc.wallMs,
        cpuSeconds: unzip.cpuSeconds + rc.cpuSeconds,
        maxRssKiB: Math.max(unzip.maxRssKiB, rc.maxRssKiB),
      },
    });
  }

  const mibs = (ms: number) => bytes / MiB / (ms / 1000);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const alone = med(rows.map((r) => mibs(r.s3Alone.wallMs)));
  const readAlone = med(rows.map((r) => mibs(r.s3Alone.readMs)));
  // Reads and writes one after the other through the same S3 server: the loopback pipeline's limit.
  const both = med(rows.map((r) => mibs(r.s3Alone.wallMs + r.s3Alone.readMs)));
  const naive = med(rows.map((r) => mibs(r.naive.unzipMs + r.naive.rcloneMs)));
  const last = rows.at(-1)!;
  const lines = [
    `# zip batch expansion (${command})`,
    '',
    `Store: ${store === 'rgw' ? "Ceph's RADOS Gateway (radosgw, memstore OSD)" : 's3rver'}. ` +
      `${files.length} entries (${(bytes / MiB).toFixed(0)} MiB; archive ${(archiveBytes / MiB).toFixed(0)} MiB), ` +
      `${rounds} round(s), medians; ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)} at the end. ` +
      `S3 write alone (4 at once): ${alone.toFixed(0)} MiB/s; S3 read alone (ranged GETs, 4 at once): ` +
      `${readAlone.toFixed(0)} MiB/s; both one after the other: ${both.toFixed(0)} MiB/s. Naive unzip + rclone copy (4 transfers): ` +
      `${naive.toFixed(0)} MiB/s (last round: unzip ${(last.naive.unzipMs / 1000).toFixed(1)} s + rclone ` +
      `${(last.naive.rcloneMs / 1000).toFixed(1)} s, 2 × the archive on local disk).`,
    '',
    `S3 server CPU per GiB: S3 write alone ${med(rows.map((r) => r.s3Alone.storeCpu / (bytes / 2 ** 30))).toFixed(1)} s.`,
    '',
    '| entries at once | expansion | expansion / S3 write alone | expansion / (S3 read + write) | expansion / naive | CPU s/GiB | S3 server CPU s/GiB | peak RSS | files in TMPDIR | range GETs |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const n of entryCounts) {
    const exp = med(rows.map((r) => mibs(r.expansion[n]!.wallMs)));
    const ratio = med(rows.map((r) => r.s3Alone.wallMs / r.expansion[n]!.wallMs));
    const x = last.expansion[n]!;
    const rss = x.maxRssKiB * 1024;
    lines.push(
      `| ${n} | ${exp.toFixed(0)} MiB/s | **${ratio.toFixed(2)}** ${ratio >= 0.8 ? '✓' : '✗'} | ${(exp / both).toFixed(2)} | ${(exp / naive).toFixed(2)}× | ` +
        `${med(rows.map((r) => r.expansion[n]!.cpuSeconds / (bytes / 2 ** 30))).toFixed(1)} | ` +
        `${med(rows.map((r) => r.expansion[n]!.storeCpu / (bytes / 2 ** 30))).toFixed(1)} | ` +
        `${(rss / MiB).toFixed(0)} MiB ${rss / 1e6 <= 250 ? '✓' : '✗'} | ${x.tmpFiles} | ${x.record.rangeGets} |`,
    );
  }
  lines.push(
    '',
    `rounds: ${rows
      .map(
        (r) =>
          `r${r.round}: ${entryCounts.map((n) => `expansion×${n} ${(r.expansion[n]!.wallMs / 1000).toFixed(1)} s`).join(', ')}, ` +
          `S3 alone ${(r.s3Alone.wallMs / 1000).toFixed(1)} s, naive ${((r.naive.unzipMs + r.naive.rcloneMs) / 1000).toFixed(1)} s`,
      )
      .join('; ')}`,
  );
  const text = lines.join('\n');
  console.log(`\n${text}\n`);
  const dir = join(project, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'batch-latest.md'), `${text}\n`);
  client.destroy();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
