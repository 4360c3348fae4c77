/** The worker role of the daemon (src/main.ts): sync jobs and zip batches. */
import type { Metrics } from '../metrics.js';
import { enqueueBatch } from '../ops/batch.js';
import { startBatchWorker } from '../queue/batch-worker.js';
import { type SyncWorker, startSyncWorker } from '../queue/worker.js';
import type { Root } from '../root.js';
import type { AfterSync } from '../sync/after-sync.js';
import { makeCallCheck, makeManifestIndexer } from '../sync/calls.js';

export function workerRole(root: Root, metrics: Metrics, afterSync: AfterSync): SyncWorker {
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
