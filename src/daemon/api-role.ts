import type { ApiServer } from '../http/api.js';
import type { Metrics } from '../metrics.js';
import { archiveIntake } from '../ops/batch.js';
import { makeUploadService } from '../ops/uploads.js';
import type { ArchiveIntake } from '../ports/api.js';
import type { Root } from '../root.js';

/**
 * The upload API: its HTTP server and the sweep that turns uploaded objects into calls. Every replica
 * sweeps; a pending upload is recorded by exactly one (the one whose claim takes it). A zip uploaded
 * through it goes to `archives` (default: queued as a zip batch, like one imported from the CLI).
 */
export async function apiRole(root: Root, metrics: Metrics, archives?: ArchiveIntake) {
  const { config, log } = root;
  const uploads = makeUploadService({
    allocation: root.allocation((c) => metrics.recordVelaCall(c)),
    presigner: root.presigner(),
    pending: root.pendingUploads(),
    tokens: root.apiTokens(),
    state: root.state(),
    store: root.store(),
    archives: archives ?? archiveIntake(root),
    keyTemplate: config.s3.keyTemplate,
    maxUploadSize: config.api.maxUploadSize,
    expiryMs: config.api.presignExpiry,
    log,
    onEvent: (org, event, bytes) => metrics.recordApiUpload(org, event, bytes),
  });
  const { startApiServer } = await import('../http/api.js');
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
