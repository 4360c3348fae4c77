/**
 * One poll of one tenant: list the source, diff against sync state (batched), add a sync job for
 * every new, stable version.
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
  /** Adds sync jobs (deduplicated by version id); `absent`: paths known to have no object in S3. */
  enqueue: (org: string, files: RemoteFile[], absent?: ReadonlySet<string>) => Promise<void>;
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
  if (plan.enqueue.length) {
    const absent = await deps.findAbsent?.(tenant.org, plan.enqueue);
    await deps.enqueue(tenant.org, plan.enqueue, absent);
  }
  await deps.state.replaceSeen(tenant.org, plan.seen);
  const ms = now() - started;
  await deps.state.recordPoll(tenant.org, { at: started, ms, files: files.length });
  return {
    kind: 'done',
    listed: listing.entries,
    matched: files.length,
    enqueued: plan.enqueue.length,
    waiting: plan.waiting,
    unchanged: plan.unchanged,
    ms,
    missingDirs: listing.missingDirs,
    unsyncable: listing.unsyncable,
  };
}
