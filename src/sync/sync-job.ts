/**
 * One sync job, independent of BullMQ: tenant → already synced? → manifest first (wait for a pending
 * call record) → a connection slot and session → call check (metadata, allocation) → S3 HEAD →
 * stream through the transfer gate → verify → sync state → after-upload steps (manifest indexing)
 * → after-sync action. "Gate" always means the transfer gate of invariant 1 (sync/transfer.ts).
 *
 * Invariant 3: a version is marked synced only after S3 confirmed it (HEAD after upload).
 */

import { causeOf, PermanentError, TenantError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ParkedRecord, SyncJobData } from '../types.js';
import { afterIndexing } from './after-sync.js';

import { completeSync, supersededOnServer, verifiedEtag } from './job-steps.js';
import type { SyncJobContext, SyncJobDeps, SyncOutcome } from './job-types.js';
import { objectKey } from './key.js';
import { sameVersion } from './plan.js';
import type { Lease } from './pool.js';
import { makeThrottle } from './throttle.js';
import { SizeMismatchError, transferFile } from './transfer.js';

function objectMetadata(org: string, job: SyncJobData): Record<string, string> {
  return {
    org,
    'source-path': job.path,
    'source-size': String(job.size),
    'source-mtime': job.mtime,
  };
}

export async function runSyncJob(
  deps: SyncJobDeps,
  job: SyncJobData,
  ctx: SyncJobContext,
): Promise<SyncOutcome> {
  const log = deps.log.child({ org: job.org, path: job.path, jobId: ctx.jobId });
  const tenant = await deps.tenants.get(job.org);
  if (!tenant) throw new PermanentError(`tenant "${job.org}" is not configured (removed?)`);
  const key = objectKey(deps.keyTemplate, tenant.org, job.path);
  if (!tenant.enabled) {
    return park(deps, job, ctx, 'tenant-disabled', 'the tenant is disabled', 15 * 60_000);
  }
  // A file above the limit is queued by the poll and fails here for good, before any login, Vela call
  // or S3 request: a failed job stays visible in status (one per version: the job id dedups it) until
  // maxFileSize is raised and the tenant resynced. Not queueing it at all would hide it.
  if (job.size > tenant.maxFileSize) {
    throw new PermanentError(
      `${job.path}: ${job.size} bytes is above the tenant's maxFileSize of ${tenant.maxFileSize} bytes`,
    );
  }

  const { synced, unhealthy, manifestRow, pendingManifests, selfPending } = await deps.state.jobCheck(
    tenant.org,
    job.path,
    {
      manifestRefs: deps.callCheck?.manifestRefs?.(job),
      // A call record pending longer than manifestWait no longer holds recordings back.
      pendingSince: Date.now() - tenant.metadata.manifestWait,
      version: job,
    },
  );
  if (!job.force && synced && sameVersion(synced, job)) {
    // A call record synced but not indexed (the indexer failed, or its process died in between):
    // index it now, from S3; only then may its after-sync action be recorded.
    if (selfPending && deps.afterUpload) {
      await deps.afterUpload(tenant, job, synced.key, undefined, objectMetadata(tenant.org, job));
      if (afterIndexing(job.path) && tenant.afterSync !== 'keep') {
        await deps.afterSync?.record(tenant, job, synced.key, synced.syncedAt);
      }
    }
    // A re-run (e.g. after a crash between the upload and the after-sync action): nothing to upload,
    // but the action may still be pending.
    if (tenant.afterSync !== 'keep') await deps.afterSync?.runPending(tenant, job);
    return { kind: 'done', result: { outcome: 'already-synced', key: synced.key, bytes: 0 } };
  }
  // A tenant marked unhealthy (bad login after a refetch, TLS verification, …) is not logged in to by
  // every queued job in turn — that storm can lock the account. Its jobs wait, parked and visible;
  // the poller's next successful poll of the tenant (with its own backoff) releases them.
  if (unhealthy) {
    return park(deps, job, ctx, 'tenant-unhealthy', unhealthy, TENANT_RECHECK_MS);
  }

  // Manifest first: a recording with no manifest row waits while a call record listed with it (or
  // before it) is not indexed yet, so which agent a call is attributed to never depends on job order.
  if (manifestRow === null && pendingManifests > 0) {
    return {
      kind: 'wait',
      retryInMs: MANIFEST_RECHECK_MS + Math.floor(Math.random() * MANIFEST_RECHECK_MS),
      detail: `waiting for ${pendingManifests} call record(s) listed with it to be indexed`,
    };
  }

  // A connection slot first (the design's order): no Vela or S3 call for a job that cannot transfer
  // now, and a job that asked Vela is never turned away for want of a slot afterwards (which would
  // ask again on its retry). Without a slot (budget used up, or logins paused after 421s) the job
  // goes back to the queue costing neither. Free when this process has an idle session of the
  // tenant; otherwise one Redis call, plus a login when a new session is needed.
  const room = await deps.pool.room(tenant);
  if (room <= 0) return room < 0 ? { kind: 'no-slot', retryInMs: -room } : { kind: 'no-slot' };
  let lease: Lease | null;
  try {
    lease = await deps.pool.acquire(tenant);
  } catch (err) {
    if (err instanceof TenantError) return tenantUnhealthy(deps, job, ctx, log, err);
    throw err;
  }
  if (!lease) {
    const paused = deps.pool.pausedFor(tenant.org);
    return paused ? { kind: 'no-slot', retryInMs: paused } : { kind: 'no-slot' };
  }
  let discard = false;
  try {
    let metadata = objectMetadata(tenant.org, job);
    if (deps.callCheck) {
      const decision = await deps.callCheck(tenant, job, {
        signal: ctx.signal,
        log,
        queuedAt: ctx.queuedAt,
        manifestRow,
      });
      if (decision.kind === 'wait') return decision;
      if (decision.kind === 'park')
        return await park(deps, job, ctx, decision.reason, decision.detail, decision.retryInMs);
      metadata = { ...metadata, ...decision.metadata };
      // It may have been parked before: it is not any more (status and resync progress see that at once).
      // A first run was never parked (a parked record of another version of the path goes at markSynced).
      if (!ctx.firstRun) await deps.state.unpark(tenant.org, job.path);
    }

    // Invariant 2: with sync state lost, an object already in S3 for this version is not uploaded again.
    // Not needed on the first run of a job whose poll listed the tenant's keys and found none here.
    if (!job.force && !(job.absent && ctx.firstRun)) {
      const head = await deps.store.head(key);
      if (
        head &&
        head.size === job.size &&
        head.metadata['source-size'] === String(job.size) &&
        head.metadata['source-mtime'] === job.mtime
      ) {
        // A call record found here is indexed again only while still pending (its rows went with the
        // sync state otherwise): only then may it be cleaned. A recording is safe to clean.
        await completeSync(deps, tenant, job, {
          key,
          etag: head.etag,
          metadata: head.metadata,
          session: lease.session,
          index: selfPending,
        });
        log.info({ key }, 'already in S3: sync state rebuilt');
        return { kind: 'done', result: { outcome: 'already-in-s3', key, bytes: 0 } };
      }
    }

    if (ctx.attempt > 0) {
      const superseded = await supersededOnServer(lease.session, job);
      if (superseded) return superseded;
    }
    const started = Date.now();
    const { buffer, etag, resumedFrom } = await transferFile({
      session: lease.session,
      store: deps.store,
      remotePath: `/${job.path}`,
      path: job.path,
      size: job.size,
      key,
      metadata,
      multipartThreshold: deps.multipartThreshold,
      signal: ctx.signal,
      onProgress: ctx.onProgress,
      // The version identity (as `sameVersion`): an upload left by an attempt at it may be resumed.
      version: `${job.size}:${job.mtime}`,
      log,
      throttle:
        tenant.maxBandwidth && deps.bandwidth
          ? makeThrottle({
              limiter: deps.bandwidth,
              org: tenant.org,
              bytesPerSecond: tenant.maxBandwidth,
              signal: ctx.signal,
              log,
            })
          : undefined,
    }).catch((err) => {
      discard = !(err instanceof PermanentError);
      throw err;
    });
    // A single PutObject of a buffer of the exact size is confirmed by its answer (S3 refuses a body
    // shorter than its Content-Length): no HEAD. A multipart upload is checked with one, since its
    // parts could add up short.
    const confirmed = buffer && etag ? etag : await verifiedEtag(deps, key, job.size);
    await completeSync(deps, tenant, job, {
      key,
      etag: confirmed,
      metadata,
      body: buffer,
      session: lease.session,
      index: true,
    });
    if (resumedFrom) deps.onResumed?.(tenant.org, resumedFrom);
    log.info(
      { key, bytes: job.size, ms: Date.now() - started, ...(resumedFrom && { resumedFrom }) },
      'synced',
    );
    return { kind: 'done', result: { outcome: 'uploaded', key, bytes: job.size } };
  } catch (err) {
    // The source adapter wraps what the transfer threw (with the command as context): look inside.
    const mismatch = causeOf(err, SizeMismatchError);
    if (mismatch) {
      log.warn({ expected: mismatch.expected, got: mismatch.got }, 'transfer size mismatch');
    }
    if (err instanceof TenantError) {
      discard = true;
      return await tenantUnhealthy(deps, job, ctx, log, err);
    }
    throw err;
  } finally {
    await deps.pool.release(lease, discard);
  }
}

/** How soon a recording waiting for a pending call record looks again (plus as much jitter). */
const MANIFEST_RECHECK_MS = 1000;

/** How often a job parked by an unhealthy tenant looks again (a successful poll releases it sooner). */
const TENANT_RECHECK_MS = 10 * 60_000;

/**
 * A tenant-level failure (530 after a credential refetch, TLS verification, a pinned certificate
 * that does not match) during this job: not the file's fault, so not a failed attempt. The tenant is
 * marked unhealthy (its other jobs then park without logging in) and this job parks with them.
 */
async function tenantUnhealthy(
  deps: SyncJobDeps,
  job: SyncJobData,
  ctx: SyncJobContext,
  log: Logger,
  err: TenantError,
): Promise<SyncOutcome> {
  await deps.state.setHealth(job.org, 'unhealthy', err.message);
  log.warn({ err: err.message }, 'tenant unhealthy: its jobs are parked until a poll of it succeeds');
  const parked = await park(deps, job, ctx, 'tenant-unhealthy', err.message, TENANT_RECHECK_MS);
  return { ...parked, tenantError: err };
}

async function park(
  deps: SyncJobDeps,
  job: SyncJobData,
  ctx: SyncJobContext,
  reason: ParkedRecord['reason'],
  detail: string,
  retryInMs: number,
): Promise<Extract<SyncOutcome, { kind: 'parked' }>> {
  const existing = await deps.state.getParked(job.org, job.path);
  const record: ParkedRecord = {
    path: job.path,
    jobId: ctx.jobId,
    reason,
    detail,
    since: existing?.reason === reason ? existing.since : Date.now(),
  };
  await deps.state.park(job.org, record);
  return { kind: 'parked', record, retryInMs };
}
