/**
 * `resync`: re-lists a tenant now and queues what is not in S3 (or everything matching, with
 * `force`), releases its parked files (and its zip batches' parked entries), and reports progress of the batch until it is finished.
 */
import { randomBytes } from 'node:crypto';
import picomatch from 'picomatch';
import { isBatchJobId } from '../queue/batch-jobs.js';
import { versionJobId } from '../queue/jobs.js';
import { listingDate } from '../sync/listing-time.js';
import { sameVersion } from '../sync/plan.js';
import { walk } from '../sync/walk.js';
import type { RemoteFile } from '../types.js';
import { acquireSession, type OpsContext } from './context.js';

export interface ResyncOptions {
  org: string;
  /** Only paths matching this glob. */
  path?: string;
  /** Only files modified on or after this date (YYYY-MM-DD or ISO). */
  since?: string;
  force?: boolean;
  dryRun?: boolean;
}

export interface ResyncPlan {
  batch: string;
  org: string;
  files: RemoteFile[];
  bytes: number;
  /** Job ids of the batch (empty on a dry run). */
  jobIds: string[];
  skipped: number;
  released: number;
}

export async function resync(ctx: OpsContext, opts: ResyncOptions): Promise<ResyncPlan> {
  const tenant = await ctx.tenants.get(opts.org);
  if (!tenant) throw new Error(`no tenant "${opts.org}" (see: ftp-sync tenants list)`);
  const since = opts.since ? Date.parse(opts.since) : undefined;
  if (opts.since && !Number.isFinite(since))
    throw new Error(`--since: expected a date like 2024-03-01, got "${opts.since}"`);

  const lease = await acquireSession(ctx, tenant, 60_000);
  let listing: RemoteFile[];
  try {
    listing = (
      await walk(lease.session, { dirs: tenant.dirs, include: tenant.include, exclude: tenant.exclude })
    ).files;
  } finally {
    await ctx.pool.release(lease, true);
  }
  // The login and listing worked: whatever made the tenant unhealthy is fixed. Its jobs parked for it
  // are released below with the others, and must not park again on a stale mark.
  await ctx.state.setHealth(tenant.org, 'ok');

  const match = opts.path ? picomatch(opts.path, { nocase: true, dot: true }) : () => true;
  const candidates = listing.filter((f) => {
    if (!match(f.path)) return false;
    if (since === undefined) return true;
    const d = listingDate(f.mtime);
    return d === undefined || d.getTime() >= since;
  });
  const synced = await ctx.state.lookup(
    tenant.org,
    candidates.map((f) => f.path),
  );
  const files = opts.force
    ? candidates
    : candidates.filter((f, i) => {
        const s = synced.synced[i];
        return !(s && sameVersion(s, f));
      });
  const batch = randomBytes(4).toString('hex');
  const plan: ResyncPlan = {
    batch,
    org: tenant.org,
    files,
    bytes: files.reduce((n, f) => n + f.size, 0),
    jobIds: [],
    skipped: candidates.length - files.length,
    released: 0,
  };
  if (opts.dryRun) return plan;

  // Parked files of the tenant go at once: each job runs its call check (Vela's allocation) again.
  const allParked = await ctx.state.parked(tenant.org);
  // Entries of zip batches are parked under their batch's job: that job runs again (its parked
  // entries only), like a file's job.
  const parked = allParked.filter((r) => !isBatchJobId(r.jobId));
  const entries = allParked.filter((r) => isBatchJobId(r.jobId));
  // A recording held for a manifest row (requireManifest) is released to go on without one.
  const held = parked.filter((r) => r.reason === 'missing-metadata');
  plan.released =
    (await ctx.jobs.release(
      held.map((p) => p.jobId),
      { released: true },
    )) + (await ctx.jobs.release(parked.filter((r) => r.reason !== 'missing-metadata').map((p) => p.jobId)));
  if (entries.length) {
    const heldBatches = new Set(entries.filter((r) => r.reason === 'missing-metadata').map((r) => r.jobId));
    const batches = new Set([
      ...(await ctx.releaseBatches([...heldBatches], { released: true })),
      ...(await ctx.releaseBatches(entries.filter((r) => !heldBatches.has(r.jobId)).map((r) => r.jobId))),
    ]);
    plan.released += entries.filter((r) => batches.has(r.jobId)).length;
  }

  if (opts.force) {
    plan.jobIds = await ctx.jobs.enqueue(tenant.org, files, { force: true, batch });
    return plan;
  }
  // Without --force the version's own job id is kept: a failed one is retried, a delayed one promoted.
  const fresh: RemoteFile[] = [];
  for (const f of files) {
    const id = versionJobId(tenant.org, f);
    const job = await ctx.jobs.get(id);
    if (job?.state === 'failed') await ctx.jobs.retry(id);
    else if (job?.state === 'delayed') await ctx.jobs.release([id]);
    else if (!job || job.state === 'completed') {
      if (job) await ctx.jobs.remove(id);
      fresh.push(f);
      continue;
    }
    plan.jobIds.push(id);
  }
  plan.jobIds.push(...(await ctx.jobs.enqueue(tenant.org, fresh, { batch })));
  return plan;
}

export interface BatchProgress {
  total: number;
  /** Finished jobs (uploaded, already in S3, superseded), removed ones included. */
  done: number;
  failed: number;
  parked: number;
  /** Jobs waiting for their next attempt after a failed one (not finished). */
  retrying: number;
  bytesTotal: number;
  bytesDone: number;
  failures: { path: string; reason: string }[];
  parkedFiles: { path: string; reason: string; detail?: string }[];
  /** Finished jobs by outcome: uploaded, already-in-s3, already-synced, superseded, removed. */
  outcomes: Record<string, number>;
  finished: boolean;
}

/** no-slot delays are at most 0.75 s (queue/jobs.ts `noSlotDelay`); a parked job waits far longer. */
const PARKED_MIN_DELAY_MS = 5_000;
/** Jobs looked up at once (ioredis sends concurrent commands in one go). */
const LOOKUP_CHUNK = 200;

/**
 * The state of a batch's jobs now. A parked job counts as finished (held back on purpose, reported
 * apart) only while it is delayed for a long time: the parked record stays in sync state until the
 * file is synced, so a released job that is waiting, running or briefly delayed for a connection
 * slot is not parked (yet).
 */
export async function batchProgress(ctx: OpsContext, plan: ResyncPlan): Promise<BatchProgress> {
  const p: BatchProgress = {
    total: plan.jobIds.length,
    done: 0,
    failed: 0,
    parked: 0,
    retrying: 0,
    bytesTotal: plan.bytes,
    bytesDone: 0,
    failures: [],
    parkedFiles: [],
    outcomes: {},
    finished: false,
  };
  // Job ids of the plan's files, with and without the batch (--force ids carry it).
  const sizeOf = new Map<string, number>();
  for (const f of plan.files) {
    sizeOf.set(versionJobId(plan.org, f), f.size);
    sizeOf.set(versionJobId(plan.org, f, plan.batch), f.size);
  }
  const outcome = (name: string) => {
    p.outcomes[name] = (p.outcomes[name] ?? 0) + 1;
  };
  const parked = new Map((await ctx.state.parked(plan.org)).map((r) => [r.jobId, r]));
  for (let i = 0; i < plan.jobIds.length; i += LOOKUP_CHUNK) {
    await Promise.all(
      plan.jobIds.slice(i, i + LOOKUP_CHUNK).map(async (id) => {
        const job = await ctx.jobs.get(id);
        if (!job) {
          // Removed after completion (retention): it is done.
          p.done++;
          p.bytesDone += sizeOf.get(id) ?? 0;
          outcome('removed');
          return;
        }
        const state = job.state;
        if (state === 'completed') {
          p.done++;
          p.bytesDone += job.data.size;
          outcome(job.result?.outcome ?? 'done');
        } else if (state === 'failed') {
          p.failed++;
          p.failures.push({ path: job.data.path, reason: job.failedReason ?? '' });
        } else {
          const rec = parked.get(id);
          if (state === 'delayed' && rec && job.delayMs >= PARKED_MIN_DELAY_MS) {
            p.parked++;
            p.parkedFiles.push({ path: rec.path, reason: rec.reason, detail: rec.detail });
            return;
          }
          if (state === 'delayed' && job.attemptsMade > 0) p.retrying++;
          p.bytesDone += job.progressBytes ?? 0;
        }
      }),
    );
  }
  p.failures.sort((a, b) => a.path.localeCompare(b.path));
  p.parkedFiles.sort((a, b) => a.path.localeCompare(b.path));
  p.finished = p.done + p.failed + p.parked >= p.total;
  return p;
}
