/** The poller role of the daemon (src/main.ts): lists every tenant's source on its schedule and queues sync jobs. */
import type { TenantConfig } from '../config.js';
import type { Metrics } from '../metrics.js';
import { type Poller, startPoller } from '../queue/poller.js';
import type { Root } from '../root.js';
import { findAbsent } from '../sync/absent.js';
import type { AfterSync } from '../sync/after-sync.js';

export function pollerRole(
  root: Root,
  /** `reconcileMs`: the daemon's option of that name (tests: a shorter reconcile interval). */
  opts: { reconcileMs?: number },
  metrics: Metrics,
  afterSync: AfterSync,
  onTenant: (t: TenantConfig) => void,
): Poller {
  const { config, log } = root;
  const jobs = root.jobs();
  const state = root.state();
  return startPoller(
    {
      state,
      pool: root.pool(),
      enqueue: async (tenant, files, absent) =>
        void (await jobs.enqueue(tenant.org, files, { absent, connections: tenant.maxConnections })),
      pending: (org, files) => jobs.pending(org, files),
      findAbsent: (org, files) => findAbsent(root.store(), config.s3.keyTemplate, org, files),
    },
    {
      connection: root.redis(),
      prefix: config.redis.prefix,
      tenants: root.tenants(),
      state,
      locks: root.pollLocks(),
      log,
      reconcileMs: opts.reconcileMs,
      lockDuration: config.worker.lockDuration,
      stalledInterval: config.worker.stalledInterval,
      shutdownTimeoutMs: config.worker.shutdownTimeout,
      onPoll: (org, outcome) => metrics.recordPoll(org, outcome),
      onTenant,
      afterPoll: (t) => afterSync.pass(t),
      releaseParked: async (org, reason) =>
        jobs.release((await state.parked(org)).filter((p) => p.reason === reason).map((p) => p.jobId)),
    },
  );
}
