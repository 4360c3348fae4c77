/**
 * The daemon's configuration for the sandbox, as the same document a config file holds: it is
 * validated with `parseConfig` for the daemon and written as YAML for the `status` command.
 */
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { type Config, configSchema, parseConfig } from '../config.js';
import type { Sandbox } from '../sandbox/index.js';
import type { DemoTenant } from './scenario.js';

export const DEMO_HTTP_TOKEN = 'demo';

/** Whether this build's configuration has an `http` section (metrics, dashboard). */
export const configHasHttp = (): boolean => 'http' in configSchema.shape;

export function demoConfigDocument(
  sandbox: Sandbox,
  tenants: DemoTenant[],
  opts: { prefix: string; httpPort?: number },
): Record<string, unknown> {
  return {
    redis: { url: sandbox.redis.url, prefix: opts.prefix },
    s3: { bucket: sandbox.s3.bucket, endpoint: sandbox.s3.endpoint, forcePathStyle: true },
    vela: { url: sandbox.vela.url, token: sandbox.vela.token, timeout: '5s' },
    defaults: {
      // A file is stable when two polls see it unchanged: with these, about two seconds after start.
      pollInterval: '2s',
      minFileAge: '1ms',
      maxConnections: 2,
      // Parked recordings ask Vela again this often (raise globex's allocation in --follow mode).
      allocationRecheck: '5s',
    },
    worker: { concurrency: 4, shutdownTimeout: '5s' },
    ...(opts.httpPort !== undefined && {
      http: { enabled: true, host: '127.0.0.1', port: opts.httpPort, token: DEMO_HTTP_TOKEN },
    }),
    log: { level: 'info' },
    tenants: tenants.map((t) => {
      const ftp = sandbox.ftp.tenants[t.org]!;
      return {
        org: t.org,
        ftp: {
          host: sandbox.ftp.host,
          port: sandbox.ftp.port,
          secure: false, // loopback only
          user: ftp.user,
          password: ftp.password,
        },
        dirs: ['/'],
        metadata: t.metadata,
      };
    }),
  };
}

/** Validates the document and writes it as YAML (mode 0600: it holds the sandbox's passwords). */
export async function writeDemoConfig(file: string, doc: Record<string, unknown>): Promise<Config> {
  const config = parseConfig(doc);
  const header = '# Written by `npm run demo` for its sandbox; removed when the demo exits.\n';
  await writeFile(file, header + stringify(doc), { mode: 0o600 });
  return config;
}
