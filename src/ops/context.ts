/**
 * What admin operations need, from the composition root: shared by the CLI and HTTP. Each part is
 * built when first used, so `status` and `tenants list` never need a tenant's FTP password.
 */
import type { Config, TenantConfig } from '../config.js';
import { NoSlotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AfterSyncStore } from '../ports/after-sync.js';
import type { ApiTokenStore } from '../ports/api.js';
import type { BatchStore } from '../ports/batches.js';
import type { SyncJobs } from '../ports/jobs.js';
import type { SyncStateStore } from '../ports/sync-state.js';
import type { TenantStore } from '../ports/tenants.js';
import { releaseBatchJobs } from '../queue/batch-jobs.js';
import { makeRoot, type Root, type RootOptions } from '../root.js';
import type { Lease, SessionPool } from '../sync/pool.js';

export interface OpsContext {
  readonly config: Config;
  readonly state: SyncStateStore;
  /** Pending after-sync actions (status). */
  readonly afterSync: AfterSyncStore;
  readonly tenants: TenantStore;
  /** Upload API tokens and the orgs registered for the API. */
  readonly apiTokens: ApiTokenStore;
  /** Zip batches and their entries (status). */
  readonly batches: BatchStore;
  readonly jobs: SyncJobs;
  /** The batch queue: lets batches with parked entries run again now (`resync`); the batch ids released. */
  releaseBatches(ids: string[], patch?: { released?: boolean }): Promise<string[]>;
  /** Sessions for `tenants test` and `resync`, inside each tenant's connection budget. */
  readonly pool: SessionPool;
  readonly log: Logger;
  close(): Promise<void>;
}

/** Sessions of a short-lived command are not kept for the next job. */
const OPS_POOL_IDLE_MS = 1_000;

/**
 * The operations' view of a root (closing it closes the root), or of a root made here from the
 * configuration with the settings of a short-lived command (onboarded tenants read afresh).
 */
export function openOps(from: Root | Config, log?: Logger, opts: RootOptions = {}): OpsContext {
  const root =
    'state' in from && typeof from.state === 'function'
      ? (from as Root)
      : makeRoot(from as Config, log!, { tenantCacheMs: 0, poolIdleMs: OPS_POOL_IDLE_MS, ...opts });
  return {
    config: root.config,
    log: root.log,
    get state() {
      return root.state();
    },
    get afterSync() {
      return root.afterSyncStore();
    },
    get tenants() {
      return root.tenants();
    },
    get jobs() {
      return root.jobs();
    },
    releaseBatches: (ids, patch) => releaseBatchJobs(root.batchQueue(), ids, patch),
    get apiTokens() {
      return root.apiTokens();
    },
    get batches() {
      return root.batches();
    },
    get pool() {
      return root.pool();
    },
    close: () => root.close(),
  };
}

/**
 * A logged-in session of the tenant inside its connection budget (invariant 5: admin operations
 * count against `maxConnections` like polls and transfers), waiting up to `waitMs` for a free slot.
 * Give it back with `ctx.pool.release(lease, true)`.
 */
export async function acquireSession(ctx: OpsContext, tenant: TenantConfig, waitMs = 60_000): Promise<Lease> {
  const until = Date.now() + waitMs;
  for (;;) {
    const lease = await ctx.pool.acquire(tenant);
    if (lease) return lease;
    if (Date.now() >= until) {
      throw new NoSlotError(
        `no free connection slot for "${tenant.org}" within ${Math.round(waitMs / 1000)} s: all ${tenant.maxConnections} are in use (the daemon is busy; try again)`,
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
