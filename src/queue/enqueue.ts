/**
 * Adding sync jobs: one place for their options (attempts, backoff, retention), their order, and
 * which files travel together.
 *
 * A completed job is removed at once by default (`worker.keepCompleted` keeps them for debugging):
 * deduplication does not need it. A version is not queued again while its job exists (waiting,
 * running, delayed or parked, failed) — the poll asks first (`pending`) and BullMQ ignores a second add
 * of an id that exists — and once it completed, sync state says the version is synced.
 *
 * **Groups.** A poll's small files (up to `GROUP_MAX_FILE`) are added as group jobs of up to
 * `worker.groupFiles` files each: one BullMQ job and one session for many files, each still its own
 * version with its own sync state (queue/group.ts). The files are spread over at least as many groups
 * as the tenant has connection slots, so a small poll still uses them all. A version in a group has no
 * job of its own: the tenant's group marker (`grouped:<org>`, a hash of version job id → group job id,
 * written before the group is added) is what `pending` finds for it while the group exists.
 *
 * Order is fair across tenants: a job's BullMQ priority is its position in its batch (1, 2, 3, …),
 * so the queue serves the first job of every tenant's poll, then the second of each, and so on,
 * instead of one tenant's whole poll before the next tenant's. A tenant's connection budget caps
 * how many of its jobs can run at once; with one tenant's block at the head of the queue the workers
 * would bounce off that budget while other tenants' connections sat idle. Every job is prioritized:
 * BullMQ serves jobs without a priority before all prioritized ones.
 */
import type { Queue } from 'bullmq';
import type { RedisClient } from '../adapters/redis-client.js';
import type { Config } from '../config.js';
import type { EnqueueOptions } from '../ports/jobs.js';
import { isCallRecord } from '../sync/metadata/resolve.js';
import type { GroupJobData, RemoteFile, SyncJobData } from '../types.js';
import { GROUP_JOB, groupJobId, versionJobId } from './jobs.js';

export type Enqueue = (org: string, files: RemoteFile[], opts?: EnqueueOptions) => Promise<string[]>;

/** BullMQ's largest priority (2^21). */
const MAX_PRIORITY = 2_097_152;

/** Files larger than this get a job of their own: their transfer time dwarfs a job's bookkeeping. */
export const GROUP_MAX_FILE = 8 * 1024 * 1024;
/** At most this many bytes in one group: a group is one session's work, one file after the other. */
export const GROUP_MAX_BYTES = 64 * 1024 * 1024;

/** The key of a tenant's group markers, beside the queue's own keys (the same hash slot on a cluster). */
export const groupMarkerKey = (queue: { toKey(type: string): string }, org: string) =>
  queue.toKey(`grouped:${org}`);

/**
 * How a poll's files are added: each unit is one job, a group when it has more than one file. Small
 * files are spread over at least `connections` groups (a tenant with 5 slots and 20 new files gets 5
 * groups of 4, not one of 20) of at most `maxFiles` files and `GROUP_MAX_BYTES` bytes; call records
 * go first, so recordings seldom find their manifest still pending. Larger files follow, one each.
 */
export function planGroups(
  files: readonly RemoteFile[],
  connections: number,
  maxFiles: number,
): RemoteFile[][] {
  const small = files.filter((f) => f.size <= GROUP_MAX_FILE);
  const large = files.filter((f) => f.size > GROUP_MAX_FILE);
  if (maxFiles <= 1 || small.length <= 1) return files.map((f) => [f]);
  const ordered = [
    ...small.filter((f) => isCallRecord(f.path)),
    ...small.filter((f) => !isCallRecord(f.path)),
  ];
  const per = Math.max(1, Math.min(maxFiles, Math.ceil(ordered.length / Math.max(1, connections))));
  const units: RemoteFile[][] = [];
  let unit: RemoteFile[] = [];
  let bytes = 0;
  for (const f of ordered) {
    if (unit.length && (unit.length >= per || bytes + f.size > GROUP_MAX_BYTES)) {
      units.push(unit);
      unit = [];
      bytes = 0;
    }
    unit.push(f);
    bytes += f.size;
  }
  if (unit.length) units.push(unit);
  return [...units, ...large.map((f) => [f])];
}

/** `queue`: the sync queue, typed however its owner holds it (the jobs added are `SyncQueueData`). */
export function makeEnqueue(queue: Queue, config: Config, redis: RedisClient): Enqueue {
  const jobOpts = {
    attempts: config.worker.attempts,
    backoff: { type: 'custom' },
    removeOnComplete:
      config.worker.keepCompleted > 0 ? { age: Math.ceil(config.worker.keepCompleted / 1000) } : true,
    removeOnFail: { age: 7 * 24 * 3600 },
  };
  return async (org, files, opts = {}) => {
    // Resync batches report each file's job: never grouped. Nor is anything added without a tenant's
    // slot count (the caller did not ask for groups).
    const grouped = !opts.force && !opts.batch && opts.connections !== undefined;
    const units = grouped
      ? planGroups(files, opts.connections ?? 1, config.worker.groupFiles)
      : files.map((f) => [f]);
    const markers: string[] = [];
    const jobs = units.map((unit, i) => {
      const priority = Math.min(i + 1, MAX_PRIORITY);
      if (unit.length > 1) {
        const ids = unit.map((f) => versionJobId(org, f));
        const jobId = groupJobId(org, ids);
        for (const id of ids) markers.push(id, jobId);
        const data: GroupJobData = {
          org,
          files: unit.map((f) => ({
            path: f.path,
            size: f.size,
            mtime: f.mtime,
            ...(opts.absent?.has(f.path) && { absent: true }),
          })),
        };
        return { name: GROUP_JOB, data, opts: { ...jobOpts, jobId, priority } };
      }
      const f = unit[0]!;
      const jobId = versionJobId(org, f, opts.force ? opts.batch : undefined);
      const data: SyncJobData = { org, path: f.path, size: f.size, mtime: f.mtime };
      if (opts.force) data.force = true;
      if (opts.batch) data.batch = opts.batch;
      if (opts.absent?.has(f.path)) data.absent = true;
      // A resync batch keeps its completed jobs for an hour: `resync` reports each one's outcome.
      const kept = opts.batch
        ? { removeOnComplete: { age: Math.max(3600, Math.ceil(config.worker.keepCompleted / 1000)) } }
        : {};
      return { name: 'sync', data, opts: { ...jobOpts, ...kept, jobId, priority } };
    });
    // Markers first: a group that ran before its markers were written would leave them behind. One
    // left by a group that was never added is ignored (`pending` also asks whether the group exists).
    for (let i = 0; i < markers.length; i += 2000) {
      await redis.hset(groupMarkerKey(queue, org), ...markers.slice(i, i + 2000));
    }
    for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000));
    return jobs.map((j) => j.opts.jobId);
  };
}
