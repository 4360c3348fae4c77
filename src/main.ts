/**
 * Wiring only: config → adapters → roles → shutdown.
 */
import { Queue } from 'bullmq';
import { makeRedisAfterSyncStore } from './adapters/redis-after-sync.js';
import { makeRedisBudget } from './adapters/redis-budget.js';
import { makeRedisClient, type RedisClient, type RedisConnectionConfig } from './adapters/redis-client.js';
import { stateKey } from './adapters/redis-keys.js';
import { makeRedisPollLocks } from './adapters/redis-lock.js';
import { makeRedisState } from './adapters/redis-state.js';
import { makeTenantStore } from './adapters/redis-tenants.js';
import { makeS3Client, makeS3Store, type S3Store } from './adapters/s3.js';
import { connectSource } from './adapters/source.js';
import { makeVelaAllocationCheck } from './adapters/vela.js';
import type { Config, TenantConfig } from './config.js';
import type { AdminHttp } from './http/server.js';
import type { Logger } from './log.js';
import { type Metrics, makeMetrics } from './metrics.js';
import type { ObjectStore } from './ports/object-store.js';
import { makeEnqueue } from './queue/enqueue.js';
import { POLL_QUEUE, SYNC_QUEUE } from './queue/jobs.js';
import { type Poller, startPoller } from './queue/poller.js';
import { type SyncWorker, startSyncWorker } from './queue/worker.js';
import { findAbsent } from './sync/absent.js';
import { makeAfterSync } from './sync/after-sync.js';
import { makeCallGate, makeManifestIndexer } from './sync/calls.js';
import { makeCredentialCache } from './sync/credentials.js';
import { tenantPrefix } from './sync/key.js';
import { makeSessionPool } from './sync/pool.js';
import { startStaleUploadCleanup } from './sync/stale-uploads.js';
import type { SyncJobData } from './types.js';

export type Role = 'all' | 'poller' | 'worker';

export interface Daemon {
  readonly poller?: Poller;
  readonly worker?: SyncWorker;
  readonly syncQueue: Queue<SyncJobData>;
  /** Every metric of this process (src/metrics.ts). */
  readonly metrics: Metrics;
  /** The admin HTTP server (health, metrics, dashboard), when `http.enabled`. */
  readonly http?: { readonly url: string };
  close(): Promise<void>;
}

export interface DaemonOptions {
  role?: Role;
  log: Logger;
  /** Override the object store (tests). */
  store?: ObjectStore;
  /** Override how often schedulers are reconciled (tests). */
  reconcileMs?: number;
  poolIdleMs?: number;
  /** Override the first retry delay of a failed after-sync action (tests; default 30 s). */
  afterSyncBackoffMs?: number;
}

/** Lets delayed (parked or waiting) jobs run now. */
export async function releaseJobs(queue: Queue, ids: string[]): Promise<number> {
  let released = 0;
  for (const id of ids) {
    const job = await queue.getJob(id);
    if (job && (await job.isDelayed())) {
      await job.promote().then(
        () => released++,
        () => {},
      );
    }
  }
  return released;
}

/** One server (a URL), or whatever `redis:` configures: a Sentinel-managed primary or a Redis Cluster. */
export function makeRedis(cfg: string | RedisConnectionConfig): RedisClient {
  // BullMQ requires maxRetriesPerRequest: null; commands wait through a Redis outage instead of failing.
  return makeRedisClient(typeof cfg === 'string' ? { url: cfg } : cfg);
}

/**
 * The poll lock's lifetime; it is renewed every third of it while the poll runs. A poller that dies
 * or loses Redis mid-poll holds the tenant's polls back for at most this long.
 */
const POLL_LOCK_MS = 20_000;

export async function startDaemon(config: Config, opts: DaemonOptions): Promise<Daemon> {
  const role = opts.role ?? 'all';
  const log = opts.log;
  const prefix = config.redis.prefix;
  const redis = makeRedis(config.redis);
  const state = makeRedisState(redis, prefix);
  // A replica that dies frees its connection slots as soon as its jobs can run elsewhere.
  const budget = makeRedisBudget(redis, prefix, { leaseMs: config.worker.lockDuration });
  const store = opts.store ?? makeS3Store(config.s3, makeS3Client(config.s3, { log }));
  const tenants = makeTenantStore(redis, config);
  try {
    await tenants.verifyKey();
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const credentials = makeCredentialCache(tenants.credentials, config.credentials.cacheTtl);
  const pool = makeSessionPool({
    budget,
    credentials,
    connect: (t, c) => connectSource(t, c, { timeoutMs: config.defaults.sourceTimeout }),
    log,
    idleMs: opts.poolIdleMs,
  });
  // Said once per process and tenant: at start for every tenant known then (config and onboarded),
  // and by the poller for a tenant onboarded later.
  const warned = new Set<string>();
  const warnInsecure = (t: TenantConfig) => {
    if (warned.has(t.org)) return;
    warned.add(t.org);
    if (t.ftp?.secure === false)
      log.warn({ org: t.org }, 'plain FTP: credentials and data travel unencrypted');
    if (t.ftp && t.ftp.secure !== false && !t.ftp.verifyCertificate)
      log.warn({ org: t.org }, 'TLS certificate not verified');
    if (t.sftp && !t.sftp.verifyHostKey) log.warn({ org: t.org }, 'SSH host key not verified');
  };
  for (const t of await tenants.list()) warnInsecure(t);
  // --- observability (metrics, admin HTTP): side channels only, they never break a transfer ---
  const metrics = makeMetrics({
    sources: {
      orgs: async () => (await tenants.list()).map((t) => t.org),
      parked: (org) => redis.hlen(stateKey(prefix, org, 'parked')),
      health: async (org) => (await state.info(org)).health,
      connectionsInUse: (org) => pool.open(org),
      queues: () => [syncQueue, pollQueue],
    },
    onScrapeError: (source, err) => log.debug({ source, err: err.message }, 'metrics read failed'),
  });
  // --- end observability ---
  // After-sync actions (delete/move source files once safe): run by jobs, retried by the poller.
  const afterSync = makeAfterSync({
    store: makeRedisAfterSyncStore(redis, prefix),
    getSynced: (org, path) => state.getSynced(org, path),
    pool,
    log,
    // A listing, a few MKDs and a rename or a delete, each bounded by sourceTimeout.
    claimMs: 3 * config.defaults.sourceTimeout,
    backoffMs: opts.afterSyncBackoffMs,
    onOutcome: (org, action, outcome) => metrics.recordAfterSync(org, action, outcome),
  });
  if (!config.vela.enabled) log.warn('vela.enabled is false: no minute-allocation check before uploads');
  const allocation = config.vela.enabled
    ? makeVelaAllocationCheck({
        url: config.vela.url,
        token: config.vela.token,
        timeoutMs: config.vela.timeout,
        onCall: (c) => metrics.recordVelaCall(c),
      })
    : undefined;

  const syncQueue = new Queue<SyncJobData>(SYNC_QUEUE, { connection: redis, prefix });
  const enqueue = makeEnqueue(syncQueue, config);

  // --- admin HTTP (health, readiness, metrics, dashboard): started before the roles, so a taken port
  // fails the start before any work begins. The dashboard shows both queues whatever the role.
  const pollQueue = new Queue(POLL_QUEUE, { connection: redis, prefix });
  let http: AdminHttp | undefined;
  if (config.http.enabled) {
    try {
      // Loaded only when enabled: the admin server and its dashboard (Bull Board, Hono) weigh some
      // 30 MiB of memory that a daemon without them does not need.
      const { startAdminHttp } = await import('./http/server.js');
      http = await startAdminHttp({
        host: config.http.host,
        port: config.http.port,
        token: config.http.token || undefined,
        metrics,
        checks: {
          redis: async () => {
            // Commands wait through an outage (maxRetriesPerRequest: null): say "not ready" at once instead.
            if (redis.status !== 'ready')
              throw Object.assign(new Error(`redis ${redis.status}`), { code: 'NOT_CONNECTED' });
            await redis.ping();
          },
          // A store given by a test without ping() counts as reachable.
          s3: 'ping' in store ? () => (store as S3Store).ping() : async () => {},
        },
        queues: [syncQueue, pollQueue],
        log,
      });
    } catch (err) {
      await Promise.allSettled([syncQueue.close(), pollQueue.close()]);
      budget.close();
      redis.disconnect();
      throw err;
    }
  }
  // --- end admin HTTP ---

  let poller: Poller | undefined;
  if (role === 'all' || role === 'poller') {
    poller = startPoller(
      {
        state,
        pool,
        enqueue: async (org, files, absent) => void (await enqueue(org, files, { absent })),
        findAbsent: (org, files) => findAbsent(store, config.s3.keyTemplate, org, files),
      },
      {
        connection: redis,
        prefix,
        tenants,
        state,
        locks: makeRedisPollLocks(redis, prefix, POLL_LOCK_MS),
        log,
        reconcileMs: opts.reconcileMs,
        lockDuration: config.worker.lockDuration,
        stalledInterval: config.worker.stalledInterval,
        shutdownTimeoutMs: config.worker.shutdownTimeout,
        onPoll: (org, outcome) => metrics.recordPoll(org, outcome),
        onTenant: warnInsecure,
        afterPoll: (t) => afterSync.pass(t),
        releaseParked: async (org, reason) =>
          releaseJobs(
            syncQueue,
            (await state.parked(org)).filter((p) => p.reason === reason).map((p) => p.jobId),
          ),
      },
    );
  }

  let worker: SyncWorker | undefined;
  if (role === 'all' || role === 'worker') {
    worker = startSyncWorker(
      {
        tenants,
        state,
        store,
        pool,
        keyTemplate: config.s3.keyTemplate,
        multipartThreshold: config.s3.multipartThreshold,
        gate: makeCallGate({ state, allocation, allocationRecheckMs: config.defaults.allocationRecheck }),
        afterUpload: makeManifestIndexer({
          state,
          store,
          log,
          release: async (_org, ids) => void (await releaseJobs(syncQueue, ids)),
          onMetadataUpdate: (org) => metrics.recordMetadataUpdate(org),
        }),
        afterSync,
        log,
      },
      {
        connection: redis,
        prefix,
        concurrency: config.worker.concurrency,
        lockDuration: config.worker.lockDuration,
        stalledInterval: config.worker.stalledInterval,
        shutdownTimeoutMs: config.worker.shutdownTimeout,
        // The job has marked the tenant unhealthy already (sync/sync-job.ts): metrics only.
        onTenantError: (org) => metrics.recordTenantError(org),
        onOutcome: (org, outcome, bytes, ms) => metrics.recordOutcome(org, outcome, bytes, ms),
      },
    );
  }
  // Crash safety: multipart uploads left open by a worker that died are aborted (hourly, our prefixes only).
  const staleUploads =
    worker && 'abortStaleUploads' in store
      ? startStaleUploadCleanup({
          abortStaleUploads: (p, age) => (store as S3Store).abortStaleUploads(p, age),
          prefixes: async () => (await tenants.list()).map((t) => tenantPrefix(config.s3.keyTemplate, t.org)),
          olderThanMs: config.s3.staleUploadAge,
          log,
        })
      : undefined;
  log.info({ role, tenants: (await tenants.list()).length }, 'ftp-sync started');

  let closing: Promise<void> | undefined;
  return {
    poller,
    worker,
    syncQueue,
    metrics,
    http: http && { url: http.url },
    close() {
      closing ??= (async () => {
        // Stop polling, stop taking jobs, let transfers finish (or hand them back), close connections.
        staleUploads?.close();
        const results = await Promise.allSettled([poller?.close(), worker?.close()]);
        const rest = await Promise.allSettled([
          pool.closeAll(),
          syncQueue.close(),
          http?.close(),
          pollQueue.close(),
        ]);
        budget.close();
        await redis.quit().catch(() => redis.disconnect());
        for (const r of [...results, ...rest]) {
          if (r.status === 'rejected') log.error({ err: String(r.reason) }, 'error during shutdown');
        }
        log.info('ftp-sync stopped');
      })();
      return closing;
    },
  };
}
