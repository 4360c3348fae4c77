/**
 * One poll of one tenant: list the source, diff against sync state (batched), add a sync job for
 * every new, stable version that has none yet.
 *
 * A poll costs what changed: a version whose job already exists (waiting, running, parked, retrying)
 * is neither added again, nor looked for in S3, nor kept in the seen set — a backlog of 100,000 queued
 * versions costs one more batched Redis question per 1,000 of them, not 100,000 adds.
 */

import type { TenantConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { SyncStateStore } from '../ports/sync-state.js';
import type { RemoteFile } from '../types.js';
import { isCallRecord } from './metadata/resolve.js';
import { planPoll, sameVersion } from './plan.js';
import type { SessionPool } from './pool.js';
import { walk } from './walk.js';

export interface PollDeps {
  state: SyncStateStore;
  pool: SessionPool;
  /**
   * Adds sync jobs (deduplicated by version id; small files in groups spread over the tenant's
   * connection slots); `absent`: paths known to have no object in S3.
   */
  enqueue: (tenant: TenantConfig, files: RemoteFile[], absent?: ReadonlySet<string>) => Promise<void>;
  /**
   * Which stable versions have a job already (aligned with `files`): not added again. Without it
   * every stable unsynced version is added each poll (and deduplicated by its job id).
   */
  pending?: (org: string, files: RemoteFile[]) => Promise<boolean[]>;
  /** Paths among the files to enqueue with no object in S3 (one listing instead of a HEAD each). */
  findAbsent?: (org: string, files: RemoteFile[]) => Promise<Set<string>>;
  log: Logger;
  now?: () => number;
}

export type PollOutcome =
  | {
      kind: 'done';
      listed: number;
      matched: number;
      enqueued: number;
      /** Stable versions whose job exists already (queued, running, parked, retrying): not added. */
      queued: number;
      waiting: number;
      unchanged: number;
      ms: number;
      /** Configured directories not on the server (the others were polled): the tenant is degraded. */
      missingDirs: string[];
      /** Names listed that cannot be synced. */
      unsyncable: { count: number; sample: string[] };
    }
  | { kind: 'no-slot' };

export async function runPoll(deps: PollDeps, tenant: TenantConfig): Promise<PollOutcome> {
  const now = deps.now ?? Date.now;
  const started = now();
  const lease = await deps.pool.acquire(tenant);
  if (!lease) return { kind: 'no-slot' };
  let listing: Awaited<ReturnType<typeof walk>>;
  let discard = false;
  try {
    listing = await walk(lease.session, {
      dirs: tenant.dirs,
      include: tenant.include,
      exclude: tenant.exclude,
      onSkip: (path, reason) => deps.log.warn({ org: tenant.org, path }, `skipped: ${reason}`),
    });
  } catch (err) {
    discard = true;
    throw err;
  } finally {
    await deps.pool.release(lease, discard);
  }
  const { files } = listing;
  const { synced, seen } = await deps.state.lookup(
    tenant.org,
    files.map((f) => f.path),
  );
  const plan = planPoll({ files, synced, seen, now: now(), minFileAge: tenant.minFileAge });
  // Manifest first: the call records of this listing not yet synced are marked pending before any job
  // of the listing exists, stable or not (one written last may still be growing), so their recordings
  // wait for them whatever the job order. The indexer clears the mark.
  const callRecords: RemoteFile[] = [];
  const pending: RemoteFile[] = [];
  files.forEach((f, i) => {
    if (!isCallRecord(f.path)) return;
    callRecords.push(f);
    const rec = synced[i];
    if (!rec || !sameVersion(rec, f)) pending.push(f);
  });
  await deps.state.notePendingManifests(tenant.org, pending, callRecords, now());
  let fresh = plan.enqueue;
  if (fresh.length && deps.pending) {
    const has = await deps.pending(tenant.org, fresh);
    fresh = fresh.filter((_, i) => !has[i]);
    // A queued version needs no stability record: its job is the record. Should the job end without
    // syncing it (failed for good, then removed), the version is seen anew.
    plan.enqueue.forEach((f, i) => {
      if (has[i]) plan.seen.delete(f.path);
    });
  }
  if (fresh.length) {
    const absent = await deps.findAbsent?.(tenant.org, fresh);
    await deps.enqueue(tenant, fresh, absent);
  }
  await deps.state.replaceSeen(tenant.org, plan.seen);
  const ms = now() - started;
  await deps.state.recordPoll(tenant.org, { at: started, ms, files: files.length });
  return {
    kind: 'done',
    listed: listing.entries,
    matched: files.length,
    enqueued: fresh.length,
    queued: plan.enqueue.length - fresh.length,
    waiting: plan.waiting,
    unchanged: plan.unchanged,
    ms,
    missingDirs: listing.missingDirs,
    unsyncable: listing.unsyncable,
  };
}
