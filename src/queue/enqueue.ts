/** Adding sync jobs: one place for their options (attempts, backoff, retention = dedup window). */
import type { Queue } from 'bullmq';
import type { Config } from '../config.js';
import type { RemoteFile, SyncJobData } from '../types.js';
import { versionJobId } from './jobs.js';

export type Enqueue = (
  org: string,
  files: RemoteFile[],
  opts?: { force?: boolean; batch?: string; absent?: ReadonlySet<string> },
) => Promise<string[]>;

export function makeEnqueue(queue: Queue<SyncJobData>, config: Config): Enqueue {
  const jobOpts = {
    attempts: config.worker.attempts,
    backoff: { type: 'custom' },
    removeOnComplete: { age: Math.ceil(config.worker.keepCompleted / 1000) },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
  return async (org, files, opts = {}) => {
    const jobs = files.map((f) => {
      const jobId = versionJobId(org, f, opts.force ? opts.batch : undefined);
      const data: SyncJobData = { org, path: f.path, size: f.size, mtime: f.mtime };
      if (opts.force) data.force = true;
      if (opts.batch) data.batch = opts.batch;
      if (opts.absent?.has(f.path)) data.absent = true;
      return { name: 'sync', data, opts: { ...jobOpts, jobId } };
    });
    for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000));
    return jobs.map((j) => j.opts.jobId);
  };
}
