/**
 * The daemon: the roles wired onto the composition root (`root.ts` builds every adapter), then a
 * deliberate shutdown — stop polling, stop taking jobs, let transfers finish or hand them back,
 * close connections.
 */
import type { Queue } from 'bullmq';
import type { Config, TenantConfig } from './config.js';
import { toError } from './errors.js';
import type { ApiServer } from './http/api.js';
import type { AdminHttp } from './http/server.js';
import type { Logger } from './log.js';
import { type Metrics, makeMetrics } from './metrics.js';
import { enqueueBatch } from './ops/batch.js';
import { makeUploadService, type UploadService } from './ops/uploads.js';
import type { ArchiveIntake } from './ports/api.js';
import type { ObjectStore } from './ports/object-store.js';
import { startBatchWorker } from './queue/batch-worker.js';
import { type Poller, startPoller } from './queue/poller.js';
import { type SyncWorker, startSyncWorker } from './queue/worker.js';
import { makeRoot, type Root, type RootOptions } from './root.js';
import { findAbsent } from './sync/absent.js';
import { type AfterSync, makeAfterSync } from './sync/after-sync.js';
import { makeCallCheck, makeManifestIndexer } from './sync/calls.js';
import { tenantPrefix } from './sync/key.js';
import { startStaleUploadCleanup } from './sync/stale-uploads.js';
import type { SyncJobData } from './types.js';

export type Role = 'all' | 'poller' | 'worker' | 'api';

export interface Daemon {
  readonly poller?: Poller;
  readonly worker?: SyncWorker;
  readonly syncQueue: Queue<SyncJobData>;
  /** Every metric of this process (src/metrics.ts). */
  readonly metrics: Metrics;
  /** The admin HTTP server (health, metrics, dashboard), when `http.enabled`. */
  readonly http?: { readonly url: string };
  /** The upload API (roles `api` and `all`). */
  readonly api?: { readonly url: string; readonly uploads: UploadService };
  close(): Promise<void>;
}

export interface DaemonOptions {
  role?: Role;
  log: Logger;
  /** Override the object store (tests). */
  store?: ObjectStore;
  /** Override how sessions to a tenant's source are opened (tests, the scale bench's synthetic source). */
  connectSource?: RootOptions['connectSource'];
  /** Override how often schedulers are reconciled (tests). */
  reconcileMs?: number;
  poolIdleMs?: number;
  /** Override the first retry delay of a failed after-sync action (tests; default 30 s). */
  afterSyncBackoffMs?: number;
  /** S3 credentials for the upload API's presigner instead of the AWS chain (tests). */
  s3Credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Where archives uploaded through the API go (the zip-batch pipeline). */
  archives?: ArchiveIntake;
}

export async function startDaemon(config: Config, opts: DaemonOptions): Promise<Daemon> {
  const role = opts.role ?? 'all';
  const log = opts.log;
  const root = makeRoot(config, log, {
    store: opts.store,
    poolIdleMs: opts.poolIdleMs,
    s3Credentials: opts.s3Credentials,
    archives: opts.archives,
    connectSource: opts.connectSource,
  });
  try {
    await root.tenants().verifyKey();
  } catch (err) {
    await root.close();
    throw err;
  }
  const warnInsecure = insecureWarnings(log);
  for (const t of await root.tenants().list()) warnInsecure(t);
  const metrics = observe(root);
  if (!config.vela.enabled) log.warn('vela.enabled is false: no minute-allocation check before uploads');
  const afterSync = makeAfterSync({
    store: root.afterSyncStore(),
    getSynced: (org, path) => root.state().getSynced(org, path),
    pool: root.pool(),
    log,
    // A listing, a few MKDs and a rename or a delete, each bounded by sourceTimeout.
    claimMs: 3 * config.defaults.sourceTimeout,
    backoffMs: opts.afterSyncBackoffMs,
    onOutcome: (org, action, outcome) => metrics.recordAfterSync(org, action, outcome),
  });

  // Sync state written in an older layout is moved into the current one before any role reads it.
  await migrateState(root);

  // The admin HTTP server starts before the roles, so a taken port fails the start before any work.
  let http: AdminHttp | undefined;
  try {
    http = await startHttp(root, metrics);
  } catch (err) {
    await root.close();
    throw err;
  }
  const poller =
    role === 'all' || role === 'poller'
      ? pollerRole(root, opts, metrics, afterSync, warnInsecure)
      : undefined;
  const worker = role === 'all' || role === 'worker' ? workerRole(root, metrics, afterSync) : undefined;
  let api: Awaited<ReturnType<typeof apiRole>> | undefined;
  if (role === 'api' || (role === 'all' && config.api.enabled)) {
    try {
      api = await apiRole(root, metrics);
    } catch (err) {
      await Promise.allSettled([poller?.close(), worker?.close(), http?.close()]);
      await root.close();
      throw err;
    }
  }
  // Crash safety: multipart uploads left open by a worker that died are aborted (hourly, our prefixes only).
  const s3 = root.s3();
  const staleUploads =
    worker && s3
      ? startStaleUploadCleanup({
          abortStaleUploads: (p, age) => s3.abortStaleUploads(p, age),
          abortRecorded: (age) => s3.abortRecorded({ olderThanMs: age }),
          prefixes: async () =>
            (await root.tenants().list()).map((t) => tenantPrefix(config.s3.keyTemplate, t.org)),
          olderThanMs: config.s3.staleUploadAge,
          // A replica killed just before this one started keeps its lease (see root.ts) for up to
          // `worker.lockDuration`: the first pass comes after that, so its uploads count as gone.
          firstAfterMs: Math.max(5_000, config.worker.lockDuration + 1_000),
          log,
        })
      : undefined;
  log.info({ role, tenants: (await root.tenants().list()).length }, 'ftp-sync started');

  let closing: Promise<void> | undefined;
  return {
    poller,
    worker,
    syncQueue: root.syncQueue(),
    metrics,
    http: http && { url: http.url },
    api: api && { url: api.server.url, uploads: api.uploads },
    close() {
      closing ??= (async () => {
        staleUploads?.close();
        await api?.close().catch((err) => log.error({ err: String(err) }, 'error during shutdown'));
        const results: PromiseSettledResult<unknown>[] = await Promise.allSettled([
          poller?.close(),
          worker?.close(),
        ]);
        // Transfers finished or were handed back: any upload of ours still recorded is abandoned.
        if (worker && s3) results.push(...(await Promise.allSettled([s3.abortRecorded({ mine: true })])));
        results.push(...(await Promise.allSettled([http?.close()])));
        for (const r of results) {
          if (r.status === 'rejected') log.error({ err: String(r.reason) }, 'error during shutdown');
        }
        await root.close();
        log.info('ftp-sync stopped');
      })();
      return closing;
    },
  };
}

/**
 * Moves every tenant's sync state of an older layout into the current one (a few commands for a
 * tenant with nothing to move). A tenant it fails for is said and left: its files are found in S3 by
 * their jobs' HEAD, not uploaded again, and the next start tries again.
 */
async function migrateState(root: Root): Promise<void> {
  const state = root.state();
  const orgs = (await root.tenants().list()).map((t) => t.org);
  let moved = 0;
  for (let i = 0; i < orgs.length; i += 32) {
    await Promise.all(
      orgs.slice(i, i + 32).map(async (org) => {
        try {
          const n = await state.migrate(org);
          moved += n;
          if (n) root.log.info({ org, records: n }, 'sync state moved to the compact layout');
        } catch (err) {
          root.log.error({ org, err: toError(err).message }, 'sync state migration failed');
        }
      }),
    );
  }
  if (moved) root.log.info({ tenants: orgs.length, records: moved }, 'sync state migration done');
}

/** Said once per process and tenant: at start for every tenant known then, by the poller for later ones. */
function insecureWarnings(log: Logger): (t: TenantConfig) => void {
  const warned = new Set<string>();
  return (t) => {
    if (warned.has(t.org)) return;
    warned.add(t.org);
    if (t.ftp?.secure === false)
      log.warn({ org: t.org }, 'plain FTP: credentials and data travel unencrypted');
    if (t.ftp && t.ftp.secure !== false && !t.ftp.verifyCertificate)
      log.warn({ org: t.org }, 'TLS certificate not verified');
    if (t.sftp && !t.sftp.verifyHostKey) log.warn({ org: t.org }, 'SSH host key not verified');
  };
}

/** Metrics: a side channel only, it never breaks a transfer. */
function observe(root: Root): Metrics {
  return makeMetrics({
    sources: {
      orgs: async () => (await root.tenants().list()).map((t) => t.org),
      parked: (org) => root.state().parkedCount(org),
      health: async (org) => (await root.state().info(org)).health,
      connectionsInUse: (org) => root.pool().open(org),
      queues: () => [root.syncQueue(), root.pollQueue()],
    },
    onScrapeError: (source, err) => root.log.debug({ source, err: err.message }, 'metrics read failed'),
  });
}

/** The admin HTTP server (health, readiness, metrics, dashboard), when enabled. */
async function startHttp(root: Root, metrics: Metrics): Promise<AdminHttp | undefined> {
  const { config, log } = root;
  if (!config.http.enabled) return undefined;
  // Loaded only when enabled: the admin server and its dashboard (Bull Board, Hono) weigh some 30 MiB
  // of memory that a daemon without them does not need.
  const { startAdminHttp } = await import('./http/server.js');
  const redis = root.redis();
  const s3 = root.s3();
  return startAdminHttp({
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
      // A store given by a test counts as reachable.
      s3: s3 ? () => s3.ping() : async () => {},
    },
    // The dashboard shows every queue whatever the role.
    queues: [root.syncQueue(), root.pollQueue(), root.batchQueue()],
    // The status page: what `ftp-sync status` shows, read from this process's root (not closed here).
    status: async () => {
      const { openOps } = await import('./ops/context.js');
      const { getStatus } = await import('./ops/status.js');
      return getStatus(openOps(root));
    },
    log,
  });
}

function pollerRole(
  root: Root,
  opts: DaemonOptions,
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
      enqueue: async (org, files, absent) => void (await jobs.enqueue(org, files, { absent })),
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

function workerRole(root: Root, metrics: Metrics, afterSync: AfterSync): SyncWorker {
  const { config, log } = root;
  const state = root.state();
  const store = root.store();
  const jobs = root.jobs();
  const callCheck = makeCallCheck({
    state,
    allocation: root.allocation((c) => metrics.recordVelaCall(c)),
    allocationRecheckMs: config.defaults.allocationRecheck,
  });
  const indexer = makeManifestIndexer({
    state,
    store,
    log,
    release: async (_org, ids) => void (await jobs.release(ids)),
    onMetadataUpdate: (org) => metrics.recordMetadataUpdate(org),
  });
  // Zip batches: the same call check and indexer, one archive per batch job (README: Batch upload).
  const batches = startBatchWorker(
    {
      tenants: root.callTenants(),
      state,
      store,
      batches: root.batches(),
      keyTemplate: config.s3.keyTemplate,
      limits: (t) => t.batch,
      callCheck,
      afterUpload: indexer,
      entryConcurrency: config.worker.batchEntries,
      onEntry: (org, outcome) => metrics.recordBatchEntry(org, outcome),
      log,
    },
    {
      connection: root.redis(),
      prefix: config.redis.prefix,
      concurrency: 1,
      lockDuration: config.worker.lockDuration,
      stalledInterval: config.worker.stalledInterval,
      allocationRecheckMs: config.defaults.allocationRecheck,
    },
  );
  const sync = startSyncWorker(
    {
      tenants: root.tenants(),
      state,
      store,
      pool: root.pool(),
      bandwidth: root.bandwidth(),
      keyTemplate: config.s3.keyTemplate,
      multipartThreshold: config.s3.multipartThreshold,
      onResumed: (org, bytes) => metrics.recordResumed(org, bytes),
      callCheck,
      // A zip synced from a source is expanded after it is in S3 (per tenant `archives`).
      afterUpload: async (tenant, job, key, body, metadata, ctx) => {
        await indexer(tenant, job, key, body, metadata, ctx);
        if (tenant.archives === 'expand' && /\.zip$/i.test(job.path)) {
          await enqueueBatch(root, { org: tenant.org, key, path: job.path, via: 'source' });
        }
      },
      afterSync,
      log,
    },
    {
      connection: root.redis(),
      prefix: config.redis.prefix,
      concurrency: config.worker.concurrency,
      lockDuration: config.worker.lockDuration,
      stalledInterval: config.worker.stalledInterval,
      shutdownTimeoutMs: config.worker.shutdownTimeout,
      // The job has marked the tenant unhealthy already (sync/sync-job.ts): metrics only.
      onTenantError: (org) => metrics.recordTenantError(org),
      onOutcome: (org, outcome, bytes, ms) => metrics.recordOutcome(org, outcome, bytes, ms),
    },
  );
  return {
    worker: sync.worker,
    close: async () => {
      await Promise.all([sync.close(), batches.close()]);
    },
  };
}

/**
 * The upload API: its HTTP server and the sweep that turns uploaded objects into calls. Every replica
 * sweeps; a pending upload is recorded by exactly one (the one whose claim takes it).
 */
async function apiRole(root: Root, metrics: Metrics) {
  const { config, log } = root;
  const uploads = makeUploadService({
    allocation: root.allocation((c) => metrics.recordVelaCall(c)),
    presigner: root.presigner(),
    pending: root.pendingUploads(),
    tokens: root.apiTokens(),
    state: root.state(),
    store: root.store(),
    archives: root.archives(),
    keyTemplate: config.s3.keyTemplate,
    maxUploadSize: config.api.maxUploadSize,
    expiryMs: config.api.presignExpiry,
    log,
    onEvent: (org, event, bytes) => metrics.recordApiUpload(org, event, bytes),
  });
  const { startApiServer } = await import('./http/api.js');
  const server: ApiServer = await startApiServer({
    host: config.api.host,
    port: config.api.port,
    publicUrl: config.api.publicUrl,
    maxBodyBytes: config.api.maxBodySize,
    tokens: root.apiTokens(),
    rateLimiter: root.rateLimiter(),
    uploads,
    log,
    onRequest: (r) => metrics.recordApiRequest(r),
  });
  let sweeping: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    sweeping ??= uploads
      .sweep()
      .catch((err) => log.error({ err: String(err) }, 'upload api: sweep failed'))
      .finally(() => {
        sweeping = undefined;
      });
  }, config.api.sweepInterval);
  timer.unref();
  return {
    server,
    uploads,
    async close() {
      clearInterval(timer);
      await server.close();
      await sweeping;
    },
  };
}
