/**
 * The sync queue as the admin operations (`ops/`) and the domain's callbacks see it: add jobs, look
 * one up, release delayed ones, retry or remove, count. `queue/sync-jobs.ts` implements it on BullMQ;
 * nothing outside `queue/` knows BullMQ's API.
 */
import type { RemoteFile, SyncJobData, SyncResult } from '../types.js';

/** Where a job is; `prioritized` is BullMQ's waiting set of jobs with a priority (every sync job). */
export type JobState = 'waiting' | 'prioritized' | 'active' | 'delayed' | 'completed' | 'failed' | 'unknown';

/** What the operations read of one sync job. */
export interface SyncJobView {
  id: string;
  state: JobState;
  data: SyncJobData;
  attemptsMade: number;
  /** The delay it was last given (ms): a parked job's is long, a no-slot one's short. */
  delayMs: number;
  failedReason?: string;
  result?: SyncResult;
  /** Bytes transferred so far, when the transfer reported progress. */
  progressBytes?: number;
}

export interface EnqueueOptions {
  /** Upload even if an object of the version exists (`resync --force`); ids carry the batch. */
  force?: boolean;
  batch?: string;
  /** Paths known to have no object in S3 (the poll listed the tenant's keys). */
  absent?: ReadonlySet<string>;
  /**
   * The tenant's connection slots: its small files are added in group jobs (`worker.groupFiles`),
   * spread over at least this many. Without it (and always with `batch`) each file gets its own job.
   */
  connections?: number;
}

export interface SyncJobs {
  /** Adds sync jobs for the files, deduplicated by version id; returns the ids of the jobs added. */
  enqueue(org: string, files: RemoteFile[], opts?: EnqueueOptions): Promise<string[]>;
  /**
   * Which of these versions have a job already (waiting, running, delayed or parked, failed; completed
   * ones kept for debugging too), aligned with `files`: a poll does not add them again.
   */
  pending(org: string, files: readonly RemoteFile[]): Promise<boolean[]>;
  /** The job, or undefined when it no longer exists (removed after completion). */
  get(id: string): Promise<SyncJobView | undefined>;
  /** Lets delayed (parked or waiting) jobs run now, `patch` merged into their data first; how many. */
  release(ids: string[], patch?: Partial<SyncJobData>): Promise<number>;
  /** A failed job runs again with a fresh set of attempts. */
  retry(id: string): Promise<void>;
  remove(id: string): Promise<void>;
  /** The ids of the jobs in these states. */
  ids(states: JobState[]): Promise<string[]>;
  /** The most recently failed jobs. */
  failed(limit: number): Promise<SyncJobView[]>;
  /** Jobs per state, of the sync queue and of the poll queue. */
  counts(): Promise<{ sync: Record<string, number>; poll: Record<string, number> }>;
  /** Delayed jobs that already failed at least once (retrying with backoff). */
  retrying(): Promise<number>;
  /** Worker connections to the sync queue; undefined when Redis refuses to say (CLIENT LIST). */
  workers(): Promise<number | undefined>;
}
