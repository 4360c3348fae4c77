/**
 * Adding sync jobs: one place for their options (attempts, backoff, retention) and their order.
 *
 * A completed job is removed at once by default (`worker.keepCompleted` keeps them for debugging):
 * deduplication does not need it. A version is not queued again while its job exists (waiting,
 * running, delayed or parked, failed) — the poll asks first (`pending`) and BullMQ ignores a second add
 * of an id that exists — and once it completed, sync state says the version is synced.
 *
 * Order is fair across tenants: a job's BullMQ priority is its position in its batch (1, 2, 3, …),
 * so the queue serves the first file of every tenant's poll, then the second of each, and so on,
 * instead of one tenant's whole poll before the next tenant's. A tenant's connection budget caps
 * how many of its jobs can run at once; with one tenant's block at the head of the queue the workers
 * would bounce off that budget while other tenants' connections sat idle. Every job is prioritized:
 * BullMQ serves jobs without a priority before all prioritized ones.
 */
import type { Queue } from 'bullmq';
import type { Config } from '../config.js';
import type { RemoteFile, SyncJobData } from '../types.js';
import { versionJobId } from './jobs.js';

export type Enqueue = (
  org: string,
  files: RemoteFile[],
  opts?: { force?: boolean; batch?: string; absent?: ReadonlySet<string> },
) => Promise<string[]>;

/** BullMQ's largest priority (2^21). */
const MAX_PRIORITY = 2_097_152;

export function makeEnqueue(queue: Queue<SyncJobData>, config: Config): Enqueue {
  const jobOpts = {
    attempts: config.worker.attempts,
    backoff: { type: 'custom' },
    removeOnComplete:
      config.worker.keepCompleted > 0 ? { age: Math.ceil(config.worker.keepCompleted / 1000) } : true,
    removeOnFail: { age: 7 * 24 * 3600 },
  };
  return async (org, files, opts = {}) => {
    const jobs = files.map((f, i) => {
      const jobId = versionJobId(org, f, opts.force ? opts.batch : undefined);
      const data: SyncJobData = { org, path: f.path, size: f.size, mtime: f.mtime };
      if (opts.force) data.force = true;
      if (opts.batch) data.batch = opts.batch;
      if (opts.absent?.has(f.path)) data.absent = true;
      const priority = Math.min(i + 1, MAX_PRIORITY);
      // A resync batch keeps its completed jobs for an hour: `resync` reports each one's outcome.
      const kept = opts.batch
        ? { removeOnComplete: { age: Math.max(3600, Math.ceil(config.worker.keepCompleted / 1000)) } }
        : {};
      return { name: 'sync', data, opts: { ...jobOpts, ...kept, jobId, priority } };
    });
    for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000));
    return jobs.map((j) => j.opts.jobId);
  };
}
