/**
 * The daemon: the roles wired onto the composition root (`root.ts` builds every adapter), then a
 * deliberate shutdown — stop polling, stop taking jobs, let transfers finish or hand them back,
 * close connections.
 */
import type { Queue } from 'bullmq';
import type { Config, TenantConfig } from './config.js';
import { startHttp } from './daemon/admin-http.js';
import { apiRole } from './daemon/api-role.js';
import { pollerRole } from './daemon/poller-role.js';
import { workerRole } from './daemon/worker-role.js';
import { toError } from './errors.js';
import type { AdminHttp } from './http/server.js';
import type { Logger } from './log.js';
import { type Metrics, makeMetrics } from './metrics.js';
import type { UploadService } from './ops/uploads.js';
import type { ArchiveIntake } from './ports/api.js';
import type { ObjectStore } from './ports/object-store.js';
import type { Poller } from './queue/poller.js';
import type { SyncWorker } from './queue/worker.js';
import { makeRoot, type Root, type RootOptions } from './root.js';
import { makeAfterSync } from './sync/after-sync.js';
import { tenantPrefix } from './sync/key.js';
import { startStaleUploadCleanup } from './sync/stale-uploads.js';
import type { SyncQueueData } from './types.js';

export type Role = 'all' | 'poller' | 'worker' | 'api';

export interface Daemon {
  readonly poller?: Poller;
  readonly worker?: SyncWorker;
  readonly syncQueue: Queue<SyncQueueData>;
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
      api = await apiRole(root, metrics, opts.archives);
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
