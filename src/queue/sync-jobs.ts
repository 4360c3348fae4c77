/**
 * The `SyncJobs` port on BullMQ: the one place the admin operations' questions about jobs are turned
 * into BullMQ calls.
 */
import type { Job, JobType, Queue } from 'bullmq';
import type { RedisClient } from '../adapters/redis-client.js';
import type { Config } from '../config.js';
import type { JobState, SyncJobs, SyncJobView } from '../ports/jobs.js';
import {
  type GroupResult,
  isGroup,
  type PollJobData,
  type SyncJobData,
  type SyncQueueData,
  type SyncResult,
} from '../types.js';
import { groupMarkerKey, makeEnqueue } from './enqueue.js';
import { parseJobId, versionJobId } from './jobs.js';

/**
 * 1 for each version whose job exists (KEYS[i], i ≥ 2: the job's hash), or whose group job does
 * (KEYS[1]: the tenant's group markers, field ARGV[i] the version's job id; ARGV[1] the queue's key
 * prefix). One script per chunk: no command per job.
 */
const PENDING_EACH = `local out = {}
for i = 2, #KEYS do
  local v = redis.call('EXISTS', KEYS[i])
  if v == 0 then
    local g = redis.call('HGET', KEYS[1], ARGV[i])
    if g and redis.call('EXISTS', ARGV[1] .. g) == 1 then v = 1 end
  end
  out[i - 1] = v
end
return out`;
/** Job ids asked per script. */
const PENDING_CHUNK = 1000;

const SYNC_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'] as const;
const POLL_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

/** Lets delayed (parked or waiting) jobs run now; `patch` is merged into their data first. */
async function releaseJobs(queue: SyncQueue, ids: string[], patch?: Partial<SyncJobData>): Promise<number> {
  let released = 0;
  for (const id of ids) {
    const job = await queue.getJob(id);
    if (job && (await job.isDelayed())) {
      const data = job.data;
      if (patch && !isGroup(data)) {
        await (job as Job<SyncJobData>).updateData({ ...data, ...patch }).catch(() => {});
      }
      await job.promote().then(
        () => released++,
        () => {},
      );
    }
  }
  return released;
}

type SyncQueue = Queue<SyncQueueData, SyncResult | GroupResult>;
type SyncQueueJob = Job<SyncQueueData, SyncResult | GroupResult>;

/** A group job's data as one line of a listing: its first file, how many more, their bytes. */
function groupLine(data: SyncQueueData): SyncJobData {
  if (!isGroup(data)) return data;
  const first = data.files[0];
  const more = data.files.length - 1;
  return {
    org: data.org,
    path: `${first?.path ?? ''}${more > 0 ? ` (and ${more} more in its group)` : ''}`,
    size: data.files.reduce((n, f) => n + f.size, 0),
    mtime: first?.mtime ?? '',
  };
}

async function view(job: SyncQueueJob): Promise<SyncJobView> {
  const state = (await job.getState()) as JobState;
  const progress = job.progress as { bytes?: number } | undefined;
  const result = job.returnvalue && job.returnvalue.outcome !== 'group' ? job.returnvalue : undefined;
  return {
    id: job.id ?? '',
    state: SYNC_STATES.includes(state as never) ? state : 'unknown',
    data: groupLine(job.data),
    attemptsMade: job.attemptsMade,
    delayMs: Number(job.delay) || 0,
    ...(job.failedReason && { failedReason: job.failedReason }),
    ...(result && { result }),
    ...(progress && typeof progress === 'object' && progress.bytes ? { progressBytes: progress.bytes } : {}),
  };
}

export function makeSyncJobs(
  syncQueue: SyncQueue,
  pollQueue: Queue<PollJobData>,
  config: Config,
  /** The connection the queues use: for the one question BullMQ has no bulk call for (`pending`). */
  redis: RedisClient,
): SyncJobs {
  const enqueue = makeEnqueue(syncQueue, config, redis);
  const jobPrefix = syncQueue.toKey('');
  return {
    enqueue: (org, files, opts) => enqueue(org, files, opts),
    async pending(org, files) {
      if (!files.length) return [];
      const ids = files.map((f) => versionJobId(org, f));
      const markers = groupMarkerKey(syncQueue, org);
      const pipe = redis.pipeline();
      for (let i = 0; i < ids.length; i += PENDING_CHUNK) {
        const chunk = ids.slice(i, i + PENDING_CHUNK);
        const keys = chunk.map((id) => syncQueue.toKey(id));
        pipe.eval(PENDING_EACH, chunk.length + 1, markers, ...keys, jobPrefix, ...chunk);
      }
      return ((await pipe.exec()) ?? []).flatMap(([err, v]) => {
        if (err) throw err;
        return (v as number[]).map((x) => x === 1);
      });
    },
    async get(id) {
      const job = await syncQueue.getJob(id);
      if (job) return view(job);
      // A version carried by a group job: the group's state, the version's data.
      const org = parseJobId(id)?.org;
      const groupId = org && (await redis.hget(groupMarkerKey(syncQueue, org), id));
      const group = groupId ? await syncQueue.getJob(groupId) : undefined;
      if (!group || !isGroup(group.data)) return undefined;
      const file = group.data.files.find((f) => versionJobId(group.data.org, f) === id);
      if (!file) return undefined;
      const state = (await group.getState()) as JobState;
      // A group that failed for good (it stalled twice) holds none of its files: `resync` queues them anew.
      if (state === 'failed') return undefined;
      return {
        id,
        state: SYNC_STATES.includes(state as never) ? state : 'unknown',
        data: { org: group.data.org, path: file.path, size: file.size, mtime: file.mtime },
        attemptsMade: 0,
        delayMs: Number(group.delay) || 0,
      };
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
