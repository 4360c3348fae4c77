/**
 * The `SyncJobs` port on BullMQ: the one place the admin operations' questions about jobs are turned
 * into BullMQ calls.
 */
import type { Job, JobType, Queue } from 'bullmq';
import type { RedisClient } from '../adapters/redis-client.js';
import type { Config } from '../config.js';
import type { JobState, SyncJobs, SyncJobView } from '../ports/jobs.js';
import type { PollJobData, SyncJobData, SyncResult } from '../types.js';
import { makeEnqueue } from './enqueue.js';
import { versionJobId } from './jobs.js';

/** 1 for each key (a job's hash) that exists. One script per chunk: no command per job. */
const EXISTS_EACH = `local out = {}
for i = 1, #KEYS do out[i] = redis.call('EXISTS', KEYS[i]) end
return out`;
/** Job ids asked per script. */
const PENDING_CHUNK = 1000;

const SYNC_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const;
const POLL_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

/** Lets delayed (parked or waiting) jobs run now; `patch` is merged into their data first. */
async function releaseJobs(
  queue: Queue<SyncJobData>,
  ids: string[],
  patch?: Partial<SyncJobData>,
): Promise<number> {
  let released = 0;
  for (const id of ids) {
    const job = await queue.getJob(id);
    if (job && (await job.isDelayed())) {
      if (patch) await job.updateData({ ...job.data, ...patch }).catch(() => {});
      await job.promote().then(
        () => released++,
        () => {},
      );
    }
  }
  return released;
}

async function view(job: Job<SyncJobData, SyncResult>): Promise<SyncJobView> {
  const state = (await job.getState()) as JobState;
  const progress = job.progress as { bytes?: number } | undefined;
  return {
    id: job.id ?? '',
    state: SYNC_STATES.includes(state as never) ? state : 'unknown',
    data: job.data,
    attemptsMade: job.attemptsMade,
    delayMs: Number(job.delay) || 0,
    ...(job.failedReason && { failedReason: job.failedReason }),
    ...(job.returnvalue && { result: job.returnvalue }),
    ...(progress && typeof progress === 'object' && progress.bytes ? { progressBytes: progress.bytes } : {}),
  };
}

export function makeSyncJobs(
  syncQueue: Queue<SyncJobData, SyncResult>,
  pollQueue: Queue<PollJobData>,
  config: Config,
  /** The connection the queues use: for the one question BullMQ has no bulk call for (`pending`). */
  redis: RedisClient,
): SyncJobs {
  const enqueue = makeEnqueue(syncQueue, config);
  return {
    enqueue: (org, files, opts) => enqueue(org, files, opts),
    async pending(org, files) {
      if (!files.length) return [];
      const keys = files.map((f) => syncQueue.toKey(versionJobId(org, f)));
      const pipe = redis.pipeline();
      for (let i = 0; i < keys.length; i += PENDING_CHUNK) {
        const chunk = keys.slice(i, i + PENDING_CHUNK);
        pipe.eval(EXISTS_EACH, chunk.length, ...chunk);
      }
      return ((await pipe.exec()) ?? []).flatMap(([err, v]) => {
        if (err) throw err;
        return (v as number[]).map((x) => x === 1);
      });
    },
    async get(id) {
      const job = await syncQueue.getJob(id);
      return job ? view(job) : undefined;
    },
    release: (ids, patch) => releaseJobs(syncQueue, ids, patch),
    async retry(id) {
      const job = await syncQueue.getJob(id);
      // A fresh set of attempts: an exhausted job retried as it is would fail for good on its next error.
      await job?.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    },
    async remove(id) {
      await (await syncQueue.getJob(id))?.remove().catch(() => {});
    },
    ids: (states) => syncQueue.getRanges(states.filter((s) => s !== 'unknown') as JobType[], 0, -1),
    async failed(limit) {
      return Promise.all((await syncQueue.getFailed(0, limit - 1)).map(view));
    },
    async counts() {
      const [sync, poll] = await Promise.all([
        syncQueue.getJobCounts(...SYNC_STATES),
        pollQueue.getJobCounts(...POLL_STATES),
      ]);
      return { sync, poll };
    },
    async retrying() {
      return (await syncQueue.getDelayed()).filter((j) => j.attemptsMade > 0).length;
    },
    workers: () => syncQueue.getWorkersCount().catch(() => undefined),
  };
}
