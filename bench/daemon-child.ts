/**
 * The real ftp-sync daemon (startDaemon, role `all`) in a process of its own, driven by bench/run.ts.
 *
 * `sync`: the scheduler's first poll of each tenant sees the files once (the stability rule needs two
 * sightings); then, timed from the parent's `go`, a second poll of every tenant enqueues them and the
 * workers transfer them. Done when the sync state counts every file. The figures are the process's
 * CPU time over that window and its peak RSS.
 *
 * `batch`: timed from `go`, the archive already in S3 is queued as a zip batch (`enqueueBatch`, as
 * `ftp-sync batch import s3://…` does) and the daemon's batch worker expands it; done when its record
 * is settled. Reports the record too (counts, range GETs).
 *
 * `poll`: a tenant whose files are all already synced; each `pollNow` is timed between two marks (the
 * parent counts Redis commands around them), then the bare listing of the same directory over one
 * basic-ftp connection for comparison.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { Client } from 'basic-ftp';
import { Redis } from 'ioredis';
import { stateKey } from '../src/adapters/redis-keys.js';
import { makeRedisState } from '../src/adapters/redis-state.js';
import { makeS3Client } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { makeLogger } from '../src/log.js';
import { startDaemon } from '../src/main.js';
import { enqueueBatch } from '../src/ops/batch.js';
import { makeRoot } from '../src/root.js';
import { failChild, mark, receive } from './lib/child.js';

export interface DaemonSpec {
  mode: 'sync' | 'poll' | 'batch';
  /** Batch mode: the archive (already in S3) whose expansion is timed, and its org. */
  batch?: { org: string; key: string };
  /** The configuration document (as YAML would give it). */
  config: Record<string, unknown>;
  /** A Redis URL that bypasses any counting proxy (for the child's own readings). */
  directRedisUrl: string;
  /** Files expected per org (sync). */
  expect?: Record<string, number>;
  /** Poll mode: how many timed polls and listings. */
  repeats?: number;
  /** Poll mode: the directory listed alone. */
  listDir?: string;
  ftp: { host: string; port: number };
  timeoutMs?: number;
  /** Sync mode: write a CPU profile of the timed window here (inspector, `.cpuprofile`). */
  profile?: string;
}

const cpuSeconds = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;

async function main() {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as DaemonSpec;
  // FTPSYNC_BENCH_MEMLOG=<file>: one line of process.memoryUsage() (MiB) per second (FTPSYNC_BENCH_MEMLOG_MS), to tell a
  // growing JS heap from growing buffers or allocator overhead.
  const memlog = process.env.FTPSYNC_BENCH_MEMLOG;
  if (memlog) {
    const { appendFileSync } = await import('node:fs');
    const t0 = Date.now();
    setInterval(() => {
      const m = process.memoryUsage();
      const mib = (n: number) => Math.round(n / 2 ** 20);
      appendFileSync(
        memlog,
        `${Math.round((Date.now() - t0) / 1000)}s rss=${mib(m.rss)} heapTotal=${mib(m.heapTotal)} heapUsed=${mib(m.heapUsed)} external=${mib(m.external)} arrayBuffers=${mib(m.arrayBuffers)}\n`,
      );
    }, Number(process.env.FTPSYNC_BENCH_MEMLOG_MS) || 1000).unref();
  }
  const config = parseConfig(spec.config, {});
  const log = makeLogger({ level: config.log.level });
  const daemon = await startDaemon(config, { role: 'all', log });
  const redis = new Redis(spec.directRedisUrl, { maxRetriesPerRequest: null });
  const state = makeRedisState(redis, config.redis.prefix);
  const orgs = config.tenants.map((t) => t.org);

  // A running daemon has its modules loaded: load the S3 SDK's and fetch's lazily required parts now
  // (own client, own request), so the timed window does not pay a once-per-process cost.
  const warm = makeS3Client(config.s3);
  await warm.send(new HeadBucketCommand({ Bucket: config.s3.bucket })).catch(() => {});
  warm.destroy();
  if (config.vela.enabled) await fetch(config.vela.url, { method: 'POST', body: '{}' }).catch(() => {});

  // The scheduler polls each tenant as soon as it exists: wait for those first sightings.
  const deadline = Date.now() + (spec.timeoutMs ?? 600_000);
  for (;;) {
    const infos = await Promise.all(orgs.map((o) => state.info(o)));
    const locks = await redis.exists(...orgs.map((o) => `${config.redis.prefix}:{${o}}:poll-lock`));
    if (infos.every((i) => i.lastPollAt !== undefined) && locks === 0) break;
    if (Date.now() > deadline) throw new Error('the first polls did not finish');
    await delay(20);
  }
  process.send?.({ type: 'ready', startupCpuSeconds: cpuSeconds(process.cpuUsage()) });
  await receive('go');

  if (spec.mode === 'batch') {
    const root = makeRoot(config, log);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const queued = await enqueueBatch(root, { org: spec.batch!.org, key: spec.batch!.key, via: 'cli' });
    let record = queued;
    while (!['done', 'failed', 'parked'].includes(record.state)) {
      if (Date.now() > deadline) throw new Error(`the batch did not settle: ${JSON.stringify(record)}`);
      await delay(100);
      record = (await root.batches().get(queued.id)) ?? record;
    }
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    await root.close();
    process.send?.({
      type: 'done',
      wallMs,
      cpuSeconds: cpuSeconds(cpu),
      maxRssKiB: process.resourceUsage().maxRSS,
      record,
    });
  } else if (spec.mode === 'sync') {
    const profiler = spec.profile ? new Session() : undefined;
    if (profiler) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    // Completion is seen from the worker's own events (no Redis reads in the timed window; listening
    // before the polls, whose first jobs finish while the polls still run), then checked once
    // against the sync state.
    const expected = Object.values(spec.expect ?? {}).reduce((s, n) => s + n, 0);
    let done = 0;
    const finished = new Promise<void>((resolve) => {
      const check = () => {
        if (done >= expected || Date.now() > deadline) resolve();
      };
      // A group job ends many files at once (those it handed on complete as jobs of their own).
      daemon.worker!.worker.on('completed', (_job, result) => {
        done += result.outcome === 'group' ? result.synced : 1;
        check();
      });
      setInterval(check, 1000).unref();
    });
    const polls = await Promise.all(orgs.map((o) => daemon.poller!.pollNow(o)));
    const enqueued = polls.reduce((s, p) => s + (p.kind === 'done' ? p.enqueued : 0), 0);
    await finished;
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    if (profiler && spec.profile) {
      const { profile } = await profiler.post('Profiler.stop');
      await mkdir(dirname(spec.profile), { recursive: true });
      await writeFile(spec.profile, JSON.stringify(profile));
      profiler.disconnect();
    }
    const counts = await daemon.syncQueue.getJobCounts(
      'failed',
      'delayed',
      'waiting',
      'prioritized',
      'active',
    );
    const pipe = redis.pipeline();
    for (const o of orgs) pipe.hget(stateKey(config.redis.prefix, o, 'info'), 'files');
    const synced = ((await pipe.exec()) ?? []).reduce((s, [, v]) => s + Number(v ?? 0), 0);
    process.send?.({
      type: 'done',
      wallMs,
      cpuSeconds: cpuSeconds(cpu),
      maxRssKiB: process.resourceUsage().maxRSS,
      files: synced,
      completed: done,
      expected,
      enqueued,
      counts,
    });
  } else {
    const org = orgs[0]!;
    const polls: { ms: number; cpuSeconds: number; listed: number }[] = [];
    for (let i = 0; i < (spec.repeats ?? 3); i++) {
      await mark('poll-start');
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const outcome = await daemon.poller!.pollNow(org);
      const ms = performance.now() - t0;
      const cpu = cpuSeconds(process.cpuUsage(cpu0));
      await mark('poll-end');
      if (outcome.kind !== 'done') throw new Error(`poll: ${outcome.kind}`);
      if (outcome.enqueued) throw new Error(`poll enqueued ${outcome.enqueued} files: not a no-change poll`);
      polls.push({ ms, cpuSeconds: cpu, listed: outcome.listed });
    }
    // The bare listing over one logged-in connection (what any tool pays), for comparison.
    const client = new Client(60_000);
    await client.access({ host: spec.ftp.host, port: spec.ftp.port, user: 'anonymous', password: 'bench@' });
    const lists: { ms: number; cpuSeconds: number; entries: number }[] = [];
    for (let i = 0; i < (spec.repeats ?? 3); i++) {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const entries = await client.list(spec.listDir ?? '/');
      lists.push({
        ms: performance.now() - t0,
        cpuSeconds: cpuSeconds(process.cpuUsage(cpu0)),
        entries: entries.length,
      });
    }
    client.close();
    process.send?.({ type: 'done', polls, lists, maxRssKiB: process.resourceUsage().maxRSS });
  }
  await receive('exit');
  await daemon.close();
  redis.disconnect();
  process.exit(0);
}

// The benchmark went away (interrupted): so does this process.
process.on('disconnect', () => process.exit(1));
main().catch(failChild);
