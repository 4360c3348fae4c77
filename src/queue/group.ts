/**
 * A group sync job on BullMQ: a tenant's small files synced one after the other by one job, each
 * through `runSyncJob` as if it were its own (its version, sync state, call check and exactly-once
 * are unchanged). Between two files the session goes back to the pool and is taken again at once,
 * so the group holds one of the tenant's slots from its first file to its last: no BullMQ job, lock
 * or login per file, and no slot left idle in one replica while another's job of the tenant waits.
 *
 * Only the plain path stays in the group. A file that must wait (a pending manifest), is parked
 * (allocation, missing metadata, an unhealthy tenant) or fails goes on as a job of its own (the
 * version's usual `v-` id, added with the group's options and the delay the outcome asks for): from
 * then on it is retried, parked, released and listed like any other job. A group that gets no slot
 * goes back to the queue with the files it has not finished; one cut short by the shutdown deadline
 * is handed back the same way.
 */
import { DelayedError, type Job, type Queue } from 'bullmq';
import type { RedisClient } from '../adapters/redis-client.js';
import { PermanentError, toError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SyncJobDeps, SyncOutcome } from '../sync/job-types.js';
import { runSyncJob } from '../sync/sync-job.js';
import type { GroupJobData, GroupMember, GroupResult, SyncJobData, SyncQueueData } from '../types.js';
import { SHUTDOWN } from './bullmq-worker.js';
import { groupMarkerKey } from './enqueue.js';
import { bouncesOf, noSlotDelay, retryDelay, versionJobId } from './jobs.js';

export interface GroupRunner {
  deps: SyncJobDeps;
  /** Where files that leave the group are added as jobs of their own. */
  queue: Queue<SyncQueueData>;
  /** For the tenant's group markers (queue/enqueue.ts). */
  redis: RedisClient;
  log: Logger;
  onTenantError?: (org: string, err: Error) => void;
  onOutcome?: (org: string, outcome: string, bytes: number, ms: number) => void;
  onProgress?: (job: Job, bytes: number) => void;
}

const memberData = (org: string, f: GroupMember): SyncJobData => ({
  org,
  path: f.path,
  size: f.size,
  mtime: f.mtime,
  ...(f.absent && { absent: true }),
});

export async function runGroupJob(
  run: GroupRunner,
  job: Job<GroupJobData>,
  token: string | undefined,
  signal: AbortSignal | undefined,
): Promise<GroupResult> {
  const { org, files } = job.data;
  const log = run.log.child({ org, group: job.id });
  // The files were never tried before this pickup: the first pickup, or the one after a bounce for
  // want of a slot. Not after a crash (BullMQ gives the group out again: a file may be half done).
  const firstRun = job.attemptsMade === 0 && job.attemptsStarted === (job.data.pickup ?? 1);
  const result: GroupResult = {
    outcome: 'group',
    synced: job.data.ended?.synced ?? 0,
    uploaded: 0,
    bytes: 0,
    spunOff: job.data.ended?.spunOff ?? 0,
  };
  const finished: string[] = [];
  let doneBytes = 0;

  const forget = async () => {
    if (finished.length) await run.redis.hdel(groupMarkerKey(run.queue, org), ...finished).catch(() => {});
  };
  /** The files from `i` on go back to the queue as this group; `untried`: none of them was started. */
  const handBack = async (i: number, untried: boolean, at: number): Promise<never> => {
    await job.updateData({
      org,
      files: files.slice(i),
      ...(untried && firstRun && { pickup: job.attemptsStarted + 1 }),
      ended: { synced: result.synced, spunOff: result.spunOff },
    });
    await forget();
    await job.moveToDelayed(at, token);
    throw new DelayedError();
  };
  /** The file goes on as a job of its own, like any other version's. */
  const spinOff = async (file: GroupMember, id: string, delayMs: number) => {
    const { attempts, backoff, removeOnComplete, removeOnFail } = job.opts;
    await run.queue.add('sync', memberData(org, file), {
      jobId: id,
      delay: Math.max(0, delayMs),
      priority: 1,
      ...(attempts !== undefined && { attempts }),
      ...(backoff !== undefined && { backoff }),
      ...(removeOnComplete !== undefined && { removeOnComplete }),
      ...(removeOnFail !== undefined && { removeOnFail }),
    });
    result.spunOff++;
  };

  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    const id = versionJobId(org, file);
    const data = memberData(org, file);
    const started = Date.now();
    let outcome: SyncOutcome;
    try {
      outcome = await runSyncJob(run.deps, data, {
        jobId: id,
        attempt: job.attemptsMade,
        firstRun,
        queuedAt: job.timestamp,
        signal,
        onProgress: (bytes) => run.onProgress?.(job, doneBytes + bytes),
      });
    } catch (e) {
      if (signal?.aborted && signal.reason === SHUTDOWN) return handBack(i, false, Date.now());
      const err = toError(e);
      await run.deps.state.recordError(org, `${file.path}: ${err.message}`).catch(() => {});
      run.onOutcome?.(org, err instanceof PermanentError ? 'failed' : 'retry', 0, Date.now() - started);
      log.warn(
        { path: file.path, err: err.message },
        'sync failed in a group: it goes on as a job of its own',
      );
      // A permanent failure runs once more on its own, where it fails for good and stays listed.
      await spinOff(file, id, err instanceof PermanentError ? 0 : retryDelay(1));
      finished.push(id);
      continue;
    }
    switch (outcome.kind) {
      case 'done':
        run.onOutcome?.(org, outcome.result.outcome, outcome.result.bytes, Date.now() - started);
        if (outcome.result.outcome === 'uploaded') result.uploaded++;
        result.bytes += outcome.result.bytes;
        result.synced++;
        break;
      case 'superseded':
        log.info({ path: file.path, detail: outcome.detail }, 'superseded by a newer version');
        run.onOutcome?.(org, 'superseded', 0, Date.now() - started);
        result.synced++;
        break;
      case 'no-slot':
        return handBack(i, true, Date.now() + (outcome.retryInMs ?? 0) + noSlotDelay(bouncesOf(job)));
      case 'wait':
        log.debug({ path: file.path, detail: outcome.detail }, 'waiting');
        await spinOff(file, id, outcome.retryInMs);
        break;
      case 'parked':
        log.info({ path: file.path, reason: outcome.record.reason }, 'parked');
        if (outcome.tenantError) run.onTenantError?.(org, outcome.tenantError);
        run.onOutcome?.(org, 'parked', 0, Date.now() - started);
        await spinOff(file, id, outcome.retryInMs);
        break;
    }
    finished.push(id);
    doneBytes += file.size;
  }
  await forget();
  return result;
}
