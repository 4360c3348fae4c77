/**
 * The sync worker role: BullMQ glue around `runSyncJob`. A single version's job is handled here, where
 * domain errors are mapped to BullMQ's (PermanentError → UnrecoverableError, parked / no slot →
 * DelayedError); a group job goes to queue/group.ts, which hands a file it cannot finish on as a job
 * of its own, so that from then on this mapping applies to it too.
 */
import { DelayedError, type Job, Queue, UnrecoverableError, type Worker } from 'bullmq';
import type { RedisClient } from '../adapters/redis-client.js';
import { PermanentError, toError } from '../errors.js';
import type { SyncJobDeps } from '../sync/job-types.js';
import { isCallRecord } from '../sync/metadata/resolve.js';
import { runSyncJob } from '../sync/sync-job.js';
import {
  type GroupJobData,
  type GroupResult,
  isGroup,
  type SyncJobData,
  type SyncQueueData,
  type SyncResult,
} from '../types.js';
import { closeOnce, makeWorker, SHUTDOWN } from './bullmq-worker.js';
import { runGroupJob } from './group.js';
import { bouncesOf, noSlotDelay, SYNC_QUEUE } from './jobs.js';

export interface SyncWorkerOptions {
  connection: RedisClient;
  prefix: string;
  concurrency: number;
  /** BullMQ's `lockDuration` and `stalledInterval`: how soon the jobs of a replica that died run elsewhere. */
  lockDuration?: number;
  stalledInterval?: number;
  /** On close, how long running transfers may go on before they are aborted and handed back. */
  shutdownTimeoutMs: number;
  /** Called when a job hits a tenant-level error (bad login, TLS); sync state is already marked. */
  onTenantError?: (org: string, err: Error) => void;
  /** Side channel for metrics; never breaks a job. */
  onOutcome?: (org: string, outcome: string, bytes: number, ms: number) => void;
}

export interface SyncWorker {
  readonly worker: Worker<SyncQueueData, SyncResult | GroupResult>;
  close(): Promise<void>;
}

export function startSyncWorker(deps: SyncJobDeps, opts: SyncWorkerOptions): SyncWorker {
  const log = deps.log.child({ role: 'worker' });
  // Where a group's files that leave it are added (queue/group.ts).
  const queue = new Queue<SyncQueueData>(SYNC_QUEUE, { connection: opts.connection, prefix: opts.prefix });
  const groups = {
    deps,
    queue,
    redis: opts.connection,
    log,
    onTenantError: (org: string, err: Error) => safe(() => opts.onTenantError?.(org, err)),
    onOutcome: (org: string, outcome: string, bytes: number, ms: number) =>
      safe(() => opts.onOutcome?.(org, outcome, bytes, ms)),
    onProgress: (() => {
      const last = new WeakMap<Job, (bytes: number) => void>();
      return (job: Job, bytes: number) => {
        let write = last.get(job);
        if (!write) {
          write = progressEvery(PROGRESS_MS, Date.now(), (b) => job.updateProgress({ bytes: b }));
          last.set(job, write);
        }
        write(bytes);
      };
    })(),
  };

  async function process(
    job: Job<SyncQueueData, SyncResult | GroupResult>,
    token?: string,
    signal?: AbortSignal,
  ): Promise<SyncResult | GroupResult> {
    if (isGroup(job.data)) return runGroupJob(groups, job as Job<GroupJobData>, token, signal);
    return processOne(job as Job<SyncJobData, SyncResult>, token, signal);
  }

  async function processOne(job: Job<SyncJobData, SyncResult>, token?: string, signal?: AbortSignal) {
    const started = Date.now();
    const data = job.data;
    try {
      const outcome = await runSyncJob(deps, data, {
        jobId: job.id ?? '',
        attempt: job.attemptsMade,
        firstRun: job.attemptsMade === 0 && job.attemptsStarted === 1,
        queuedAt: job.timestamp,
        signal,
        onProgress: progressEvery(PROGRESS_MS, started, (bytes) => job.updateProgress({ bytes })),
      });
      switch (outcome.kind) {
        case 'done':
          safe(() =>
            opts.onOutcome?.(data.org, outcome.result.outcome, outcome.result.bytes, Date.now() - started),
          );
          return outcome.result;
        case 'superseded':
          log.info(
            { org: data.org, path: data.path, detail: outcome.detail },
            'superseded by a newer version',
          );
          safe(() => opts.onOutcome?.(data.org, 'superseded', 0, Date.now() - started));
          return { outcome: 'superseded', key: '', bytes: 0 } satisfies SyncResult;
        case 'no-slot':
          // Logins paused after 421s: wait the pause out (plus jitter, so the jobs do not come back
          // at the same moment); else a short random delay until a slot is free.
          await job.moveToDelayed(Date.now() + (outcome.retryInMs ?? 0) + noSlotDelay(bouncesOf(job)), token);
          throw new DelayedError();
        case 'wait':
          log.debug({ org: data.org, path: data.path, detail: outcome.detail }, 'waiting');
          await job.moveToDelayed(Date.now() + outcome.retryInMs, token);
          throw new DelayedError();
        case 'parked':
          log.info({ org: data.org, path: data.path, reason: outcome.record.reason }, 'parked');
          if (outcome.tenantError) {
            const err = outcome.tenantError;
            safe(() => opts.onTenantError?.(data.org, err));
          }
          safe(() => opts.onOutcome?.(data.org, 'parked', 0, Date.now() - started));
          await job.moveToDelayed(Date.now() + outcome.retryInMs, token);
          throw new DelayedError();
      }
    } catch (e) {
      if (e instanceof DelayedError) throw e;
      if (signal?.aborted && signal.reason === SHUTDOWN) {
        // Shutdown deadline passed: hand the job back untouched (not an attempt).
        await job.moveToDelayed(Date.now(), token).catch(() => {});
        throw new DelayedError();
      }
      const err = toError(e);
      await deps.state.recordError(data.org, `${data.path}: ${err.message}`).catch(() => {});
      safe(() =>
        opts.onOutcome?.(
          data.org,
          err instanceof PermanentError ? 'failed' : 'retry',
          0,
          Date.now() - started,
        ),
      );
      if (err instanceof PermanentError) {
        await deps.state.unpark(data.org, data.path).catch(() => {});
        // A call record that will never be indexed must not hold its recordings back.
        if (isCallRecord(data.path)) await deps.state.manifestSettled(data.org, data).catch(() => {});
        log.error({ org: data.org, path: data.path, err: err.message }, 'sync failed for good');
        throw new UnrecoverableError(err.message);
      }
      log.warn(
        { org: data.org, path: data.path, err: err.message, attempt: job.attemptsMade + 1 },
        'sync failed, will retry',
      );
      throw err;
    }
  }

  const worker = makeWorker(SYNC_QUEUE, process, { ...opts, backoff: true }, log, 'sync worker');
  const closeWorker = closeOnce(worker, opts.shutdownTimeoutMs);
  let closing: Promise<void> | undefined;
  return {
    worker,
    close: () => {
      closing ??= closeWorker().finally(() => queue.close());
      return closing;
    },
  };
}

/** How often a running transfer writes its progress to its job (a Redis script and an event each). */
const PROGRESS_MS = 1000;

/**
 * Passes progress on at most once per `everyMs`, the first time `everyMs` after `since`: a transfer
 * that ends within a second (most files) writes none, a long one one per second.
 */
function progressEvery(
  everyMs: number,
  since: number,
  write: (bytes: number) => Promise<unknown>,
): (bytes: number) => void {
  let last = since;
  return (bytes) => {
    const now = Date.now();
    if (now - last < everyMs) return;
    last = now;
    void write(bytes).catch(() => {});
  };
}

function safe(fn: () => void) {
  try {
    fn();
  } catch {
    /* a side channel never breaks a job */
  }
}
