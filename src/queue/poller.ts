/**
 * The poller role: one BullMQ job scheduler per tenant, reconciled with the tenant directory (so
 * tenants onboarded or removed at run time start or stop being polled), and a poll worker whose polls
 * of one tenant never overlap (a renewed Redis lock; bullmq#3032: the next scheduled job is created
 * when the current one starts, so a slow listing would otherwise overlap itself).
 */
import { DelayedError, type Job, Queue } from 'bullmq';
import type { RedisClient } from '../adapters/redis-client.js';
import type { TenantConfig } from '../config.js';
import { TenantError, toError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PollLocks } from '../ports/locks.js';
import type { SyncStateStore } from '../ports/sync-state.js';
import type { TenantDirectory } from '../ports/tenants.js';
import { type PollDeps, type PollOutcome, runPoll } from '../sync/poll.js';
import type { ParkedRecord, PollJobData } from '../types.js';
import { makeWorker } from './bullmq-worker.js';
import { bouncesOf, noSlotDelay, POLL_QUEUE, schedulerId } from './jobs.js';

export interface PollerOptions {
  connection: RedisClient;
  prefix: string;
  tenants: TenantDirectory;
  state: SyncStateStore;
  /** One poll per tenant at a time across replicas (invariant 6). */
  locks: PollLocks;
  /** How often the schedulers are reconciled with the tenant directory. */
  reconcileMs?: number;
  concurrency?: number;
  /**
   * BullMQ's `lockDuration` and `stalledInterval` of the poll worker: a poll job held by a replica
   * that died blocks its tenant's scheduler (the next poll is created when one starts) until then.
   */
  lockDuration?: number;
  stalledInterval?: number;
  /** On close, how long a running poll may go on before the process stops waiting for it. */
  shutdownTimeoutMs?: number;
  onPoll?: (org: string, outcome: PollOutcome | { kind: 'failed' | 'skipped' }) => void;
  /** Lets the tenant's jobs parked for `reason` run now; returns how many. */
  releaseParked?: (org: string, reason: ParkedRecord['reason']) => Promise<number>;
  /**
   * Runs after each successful poll, still under the tenant's poll lock: the after-sync pass
   * (sync/after-sync.ts), which retries the tenant's pending deletes/moves whose backoff is over.
   */
  afterPoll?: (tenant: TenantConfig) => Promise<unknown>;
  /** Called once per process for each tenant it starts polling (start-up warnings). */
  onTenant?: (tenant: TenantConfig) => void;
  log: Logger;
}

export interface Poller {
  readonly queue: Queue<PollJobData>;
  /** Makes the schedulers match the tenant directory now. */
  reconcile(): Promise<void>;
  /** Runs one poll of a tenant right now, in this process (resync, tests). */
  pollNow(org: string): Promise<PollOutcome | { kind: 'skipped' }>;
  close(): Promise<void>;
}

/** Poll backoff for an unhealthy tenant: doubles per failed poll, capped at 30 minutes. */
function unhealthyBackoff(failures: number, interval: number): number {
  return Math.min(30 * 60_000, interval * 2 ** Math.min(10, Math.max(0, failures - 1)));
}

export function startPoller(pollDeps: Omit<PollDeps, 'log'>, opts: PollerOptions): Poller {
  const log = opts.log.child({ role: 'poller' });
  const queue = new Queue<PollJobData>(POLL_QUEUE, { connection: opts.connection, prefix: opts.prefix });

  const seen = new Set<string>();
  /** What this process last said of each tenant's missing directories and unsyncable names. */
  const said = new Map<string, string>();

  async function pollOnce(org: string): Promise<PollOutcome | { kind: 'skipped' }> {
    const tenant = await opts.tenants.get(org);
    if (!tenant?.enabled) return { kind: 'skipped' };
    // The backoff of an unhealthy tenant is kept in Redis, so every replica's poller keeps to it.
    const info = await opts.state.info(org);
    if (
      info.health === 'unhealthy' &&
      info.pollFailures > 0 &&
      Date.now() - (info.lastFailureAt ?? 0) < unhealthyBackoff(info.pollFailures, tenant.pollInterval)
    ) {
      return { kind: 'skipped' };
    }
    const res = await opts.locks.withPollLock(org, async () => {
      try {
        const outcome = await runPoll({ ...pollDeps, log: log.child({ org }) }, tenant);
        if (outcome.kind === 'done') {
          const was = await opts.state.setHealth(org, 'ok');
          const { missingDirs, unsyncable, ...summary } = outcome;
          await opts.state.recordPollNotes(org, { missingDirs, unsyncable }).catch(() => {});
          // Said once, and again only when it changes: not a warning every poll.
          const heard = JSON.stringify([missingDirs, unsyncable.count]);
          if (said.get(org) !== heard) {
            said.set(org, heard);
            if (missingDirs.length) {
              log.warn(
                { org, missingDirs },
                `tenant degraded: ${missingDirs.join(', ')} not found on the server (check dirs); the other directories are synced`,
              );
            }
            if (unsyncable.count) {
              log.warn(
                { org, count: unsyncable.count, sample: unsyncable.sample },
                `${unsyncable.count} name(s) listed cannot be synced (control characters, a newline, a / in the name)`,
              );
            }
          }
          log.info(
            { org, ...summary, missingDirs: missingDirs.length, unsyncable: unsyncable.count },
            'poll done',
          );
          if (was === 'unhealthy') {
            // The tenant works again: its jobs parked meanwhile go now, not at their next recheck.
            const released = await opts.releaseParked?.(org, 'tenant-unhealthy').catch(() => 0);
            log.info({ org, released }, 'tenant healthy again');
          }
          await opts
            .afterPoll?.(tenant)
            .catch((err) => log.warn({ org, err: toError(err).message }, 'after-poll step failed'));
        }
        return outcome;
      } catch (e) {
        const err = toError(e);
        await opts.state.recordError(org, `poll: ${err.message}`).catch(() => {});
        if (err instanceof TenantError) {
          await opts.state.setHealth(org, 'unhealthy', err.message, { poll: true }).catch(() => 'unknown');
        }
        log.error({ org, err: err.message }, 'poll failed');
        throw err;
      }
    });
    if (!res.ran) log.debug({ org }, 'poll skipped: another poll of this tenant is running');
    return res.ran ? res.value : { kind: 'skipped' };
  }

  const worker = makeWorker(
    POLL_QUEUE,
    async (job: Job<PollJobData>, token?: string) => {
      let outcome: Awaited<ReturnType<typeof pollOnce>> | { kind: 'failed' };
      try {
        outcome = await pollOnce(job.data.org);
      } catch (err) {
        safe(() => opts.onPoll?.(job.data.org, { kind: 'failed' }));
        // A failed poll is not retried: the scheduler's next poll is the retry.
        return { failed: toError(err).message };
      }
      safe(() => opts.onPoll?.(job.data.org, outcome));
      if (outcome.kind === 'no-slot') {
        await job.moveToDelayed(Date.now() + noSlotDelay(bouncesOf(job)), token);
        throw new DelayedError();
      }
      return outcome;
    },
    { ...opts, concurrency: opts.concurrency ?? 4 },
    log,
    'poll worker',
  );

  async function reconcile() {
    const tenants = (await opts.tenants.list()).filter((t) => t.enabled);
    const wanted = new Map(tenants.map((t) => [schedulerId(t.org), t]));
    for (const t of tenants) {
      if (seen.has(t.org)) continue;
      seen.add(t.org);
      safe(() => opts.onTenant?.(t));
    }
    for (const [id, t] of wanted) {
      await queue.upsertJobScheduler(
        id,
        { every: t.pollInterval },
        {
          name: 'poll',
          data: { org: t.org },
          opts: { removeOnComplete: { count: 50 }, removeOnFail: { count: 50 } },
        },
      );
    }
    for (const s of await queue.getJobSchedulers(0, -1)) {
      if (s.key && !wanted.has(s.key)) {
        await queue.removeJobScheduler(s.key);
        log.info({ scheduler: s.key }, 'tenant removed: polling stopped');
      }
    }
  }

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const loop = async () => {
    if (stopped) return;
    await reconcile().catch((err) => log.error({ err: toError(err).message }, 'reconcile failed'));
    if (!stopped) timer = setTimeout(loop, opts.reconcileMs ?? 10_000);
  };
  void loop();

  let closing: Promise<void> | undefined;
  return {
    queue,
    reconcile,
    pollNow: pollOnce,
    close() {
      closing ??= (async () => {
        stopped = true;
        clearTimeout(timer);
        const closed = worker.close();
        const deadline = opts.shutdownTimeoutMs;
        if (deadline === undefined) await closed;
        else {
          // A listing is not aborted: past the deadline the process goes on closing; the poll job's lock
          // and the tenant's poll lock expire, and another replica polls.
          let t: NodeJS.Timeout | undefined;
          const late = await Promise.race([
            closed.then(() => false),
            new Promise<boolean>((resolve) => {
              t = setTimeout(() => resolve(true), deadline);
            }),
          ]);
          clearTimeout(t);
          if (late) log.warn('a poll was still running at the shutdown deadline: left to expire');
        }
        await queue.close();
      })();
      return closing;
    },
  };
}

function safe(fn: () => void) {
  try {
    fn();
  } catch {
    /* side channel */
  }
}
