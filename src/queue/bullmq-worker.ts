/**
 * One BullMQ `Worker` set up the same way for every queue of ftp-sync (sync, batch, poll): the shared
 * connection and prefix, the lock and stalled-job settings, the error log, and a close that runs
 * once and, given a deadline, cancels the jobs still running past it.
 */
import { type Processor, Worker } from 'bullmq';
import type { RedisClient } from '../adapters/redis-client.js';
import type { Logger } from '../log.js';
import { retryDelay } from './jobs.js';

export interface WorkerSetup {
  connection: RedisClient;
  prefix: string;
  concurrency: number;
  /** BullMQ's `lockDuration` and `stalledInterval`: how soon the jobs of a replica that died run elsewhere. */
  lockDuration?: number;
  stalledInterval?: number;
  /** A failed attempt is retried after `retryDelay(attemptsMade)` (jobs added with a custom backoff). */
  backoff?: boolean;
}

/** The reason a job's signal is aborted with when the shutdown deadline passed (`closeOnce`). */
export const SHUTDOWN = 'ftp-sync shutting down';

export function makeWorker<D, R>(
  queue: string,
  process: Processor<D, R>,
  setup: WorkerSetup,
  log: Logger,
  name: string,
): Worker<D, R> {
  const worker = new Worker<D, R>(queue, process, {
    connection: setup.connection,
    prefix: setup.prefix,
    concurrency: setup.concurrency,
    // BullMQ takes an explicit `undefined` as the value: pass only what is set.
    ...(setup.lockDuration ? { lockDuration: setup.lockDuration } : {}),
    ...(setup.stalledInterval ? { stalledInterval: setup.stalledInterval } : {}),
    ...(setup.backoff
      ? { settings: { backoffStrategy: (attemptsMade: number) => retryDelay(attemptsMade) } }
      : {}),
  });
  worker.on('error', (err) => log.error({ err: err.message }, `${name} error`));
  return worker;
}

/**
 * The worker's close, run once however often it is called. With `shutdownTimeoutMs`, jobs still
 * running that long after are cancelled (their signal aborted with `SHUTDOWN`) and handed back.
 */
export function closeOnce(worker: Worker, shutdownTimeoutMs?: number): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= (async () => {
      const closed = worker.close();
      if (shutdownTimeoutMs === undefined) return closed;
      const timer = setTimeout(() => worker.cancelAllJobs(SHUTDOWN), shutdownTimeoutMs);
      try {
        await closed;
      } finally {
        clearTimeout(timer);
      }
    })();
    return closing;
  };
}
