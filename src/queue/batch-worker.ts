/**
 * The batch worker: BullMQ glue around `runBatch`, one archive per job. A failed request (S3, Redis)
 * is retried with backoff and the run resumes where it stopped; a batch with parked recordings runs
 * again after the allocation recheck delay (only its parked entries are looked at again).
 */
import { DelayedError, type Job, UnrecoverableError, type Worker } from 'bullmq';
import type { RedisClient } from '../adapters/redis-client.js';
import { PermanentError, toError } from '../errors.js';
import { type BatchDeps, type BatchJobData, runBatch } from '../sync/batch/expand.js';
import { BATCH_QUEUE } from './batch-jobs.js';
import { closeOnce, makeWorker } from './bullmq-worker.js';

export interface BatchWorkerOptions {
  connection: RedisClient;
  prefix: string;
  /** Archives expanded at once by this process (each reads one entry at a time). */
  concurrency: number;
  lockDuration?: number;
  stalledInterval?: number;
  /** How long a batch with parked recordings waits before they are checked again. */
  allocationRecheckMs: number;
}

export interface BatchWorker {
  readonly worker: Worker<BatchJobData>;
  close(): Promise<void>;
}

export function startBatchWorker(deps: BatchDeps, opts: BatchWorkerOptions): BatchWorker {
  const log = deps.log.child({ role: 'batch-worker' });
  async function process(job: Job<BatchJobData>, token?: string) {
    try {
      const run = await runBatch(deps, job.data);
      if (run.parked) {
        await job.moveToDelayed(Date.now() + (run.retryInMs ?? opts.allocationRecheckMs), token);
        throw new DelayedError();
      }
      return { state: run.record.state, counts: run.record.counts };
    } catch (e) {
      if (e instanceof DelayedError) throw e;
      const err = toError(e);
      if (err instanceof PermanentError) {
        log.error({ org: job.data.org, batch: job.data.id, err: err.message }, 'batch failed for good');
        throw new UnrecoverableError(err.message);
      }
      log.warn({ org: job.data.org, batch: job.data.id, err: err.message }, 'batch run failed, will retry');
      throw err;
    }
  }
  const worker = makeWorker(BATCH_QUEUE, process, { ...opts, backoff: true }, log, 'batch worker');
  return { worker, close: closeOnce(worker) };
}
