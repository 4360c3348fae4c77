/** The admin HTTP server of the daemon (src/main.ts). */
import type { AdminHttp } from '../http/server.js';
import type { Metrics } from '../metrics.js';
import type { Root } from '../root.js';

/** The admin HTTP server (health, readiness, metrics, dashboard), when enabled. */
export async function startHttp(root: Root, metrics: Metrics): Promise<AdminHttp | undefined> {
  const { config, log } = root;
  if (!config.http.enabled) return undefined;
  // Loaded only when enabled: the admin server and its dashboard (Bull Board, Hono) weigh some 30 MiB
  // of memory that a daemon without them does not need.
  const { startAdminHttp } = await import('../http/server.js');
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
      const { openOps } = await import('../ops/context.js');
      const { getStatus } = await import('../ops/status.js');
      return getStatus(openOps(root));
    },
    log,
  });
}
