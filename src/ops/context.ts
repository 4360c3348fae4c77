/**
 * What admin operations need, opened from the configuration: shared by the CLI and HTTP.
 */
import { Queue } from 'bullmq';
import { makeRedisAfterSyncStore } from '../adapters/redis-after-sync.js';
import { makeRedisBudget } from '../adapters/redis-budget.js';
import type { RedisClient } from '../adapters/redis-client.js';
import { makeRedisState } from '../adapters/redis-state.js';
import { makeTenantStore } from '../adapters/redis-tenants.js';
import { connectSource } from '../adapters/source.js';
import type { Config, TenantConfig } from '../config.js';
import { NoSlotError } from '../errors.js';
import type { Logger } from '../log.js';
import { makeRedis } from '../main.js';
import type { AfterSyncStore } from '../ports/after-sync.js';
import type { SyncStateStore } from '../ports/sync-state.js';
import type { TenantStore } from '../ports/tenants.js';
import { POLL_QUEUE, SYNC_QUEUE } from '../queue/jobs.js';
import { makeCredentialCache } from '../sync/credentials.js';
import { type Lease, makeSessionPool, type SessionPool } from '../sync/pool.js';
import type { PollJobData, SyncJobData } from '../types.js';

export interface OpsContext {
  config: Config;
  redis: RedisClient;
  state: SyncStateStore;
  /** Pending after-sync actions (status). */
  afterSync: AfterSyncStore;
  tenants: TenantStore;
  syncQueue: Queue<SyncJobData>;
  pollQueue: Queue<PollJobData>;
  pool: SessionPool;
  log: Logger;
  close(): Promise<void>;
}

export function openOps(
  config: Config,
  log: Logger,
  redis: RedisClient = makeRedis(config.redis),
): OpsContext {
  const prefix = config.redis.prefix;
  const tenants = makeTenantStore(redis, config, { cacheMs: 0 });
  const budget = makeRedisBudget(redis, prefix);
  const pool = makeSessionPool({
    budget,
    credentials: makeCredentialCache(tenants.credentials, 0),
    connect: (t, c) => connectSource(t, c, { timeoutMs: 20_000 }),
    log,
    idleMs: 1_000,
  });
  const syncQueue = new Queue<SyncJobData>(SYNC_QUEUE, { connection: redis, prefix });
  const pollQueue = new Queue<PollJobData>(POLL_QUEUE, { connection: redis, prefix });
  return {
    config,
    redis,
    state: makeRedisState(redis, prefix),
    afterSync: makeRedisAfterSyncStore(redis, prefix),
    tenants,
    syncQueue,
    pollQueue,
    pool,
    log,
    async close() {
      await pool.closeAll();
      budget.close();
      await Promise.allSettled([syncQueue.close(), pollQueue.close()]);
      await redis.quit().catch(() => redis.disconnect());
    },
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
