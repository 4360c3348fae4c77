/**
 * A whole ftp-sync against real parts: Redis (shared, unique prefix), an in-process FTP server and
 * an S3 server, with the daemon's logs captured so tests can search them.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { makeRedisState } from '../../src/adapters/redis-state.js';
import { makeS3Store } from '../../src/adapters/s3.js';
import { type Config, parseConfig } from '../../src/config.js';
import { makeLogger } from '../../src/log.js';
import { type Daemon, startDaemon } from '../../src/main.js';
import { startVelaStandin, type VelaStandin } from '../../src/standin/vela-standin.js';
import { redisUrl, uniquePrefix } from './env.js';
import { tempDir } from './fs.js';
import { type FtpTestServer, startFtpServer } from './ftp-server.js';
import { type S3TestServer, startS3 } from './s3.js';

export const SECRETS = { ftpPassword: 'ftp-Pa55-word-7c1e', velaToken: 'vela-tok-9f8e7d6c' };

export function captureLog(level = 'debug') {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { log: makeLogger({ level }, dest), lines, text: () => lines.join('\n') };
}

export interface TestEnv {
  root: string;
  ftp: FtpTestServer;
  s3: S3TestServer;
  redis: Redis;
  prefix: string;
  config: Config;
  logs: ReturnType<typeof captureLog>;
  state: ReturnType<typeof makeRedisState>;
  vela?: VelaStandin;
  store: ReturnType<typeof makeS3Store>;
  start(overrides?: Partial<Parameters<typeof startDaemon>[1]> & { config?: Config }): Promise<Daemon>;
  stop(): Promise<void>;
}

export interface TestEnvOptions {
  /** Overrides for the default tenant `acme`. */
  tenant?: Record<string, unknown>;
  /** More tenants, each with its own FTP user `<org>` (password `passwordOf(org)`) and dir `/<org>`. */
  moreTenants?: string[];
  config?: Record<string, unknown>;
  /** Start the Vela stand-in and point the config at it ('strict': unknown orgs get 404). */
  vela?: boolean | 'strict';
  env?: Record<string, string>;
}

export const passwordOf = (org: string) =>
  org === 'acme' ? SECRETS.ftpPassword : `${SECRETS.ftpPassword}-${org}`;

export async function makeTestEnv(name: string, opts: TestEnvOptions = {}): Promise<TestEnv> {
  const dir = await tempDir(name);
  const orgs = ['acme', ...(opts.moreTenants ?? [])];
  const ftp = await startFtpServer({
    root: dir.path,
    users: Object.fromEntries(orgs.map((o) => [o, passwordOf(o)])),
  });
  const vela = opts.vela
    ? await startVelaStandin({
        token: SECRETS.velaToken,
        defaultAllocation: opts.vela === 'strict' ? undefined : { status: 'within' },
      })
    : undefined;
  const s3 = await startS3();
  const prefix = uniquePrefix(name);
  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const config = parseConfig(
    {
      redis: { url: redisUrl(), prefix },
      s3: { bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true, multipartThreshold: '8MiB' },
      vela: vela ? { url: vela.url, token: SECRETS.velaToken, timeout: '2s' } : { enabled: false },
      defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: 2 },
      worker: { concurrency: 4 },
      ...opts.config,
      tenants: [
        {
          org: 'acme',
          ftp: {
            host: '127.0.0.1',
            port: ftp.port,
            secure: false,
            user: 'acme',
            password: SECRETS.ftpPassword,
          },
          dirs: opts.moreTenants?.length ? ['/acme'] : ['/'], // with more tenants, each keeps to its own dir
          metadata: { defaultEmail: 'agent@acme.example' },
          ...opts.tenant,
        },
        ...(opts.moreTenants ?? []).map((org) => ({
          org,
          ftp: { host: '127.0.0.1', port: ftp.port, secure: false, user: org, password: passwordOf(org) },
          dirs: [`/${org}`],
          metadata: { defaultEmail: `agent@${org}.example` },
        })),
      ],
    },
    opts.env ?? {},
  );
  const logs = captureLog();
  const daemons: Daemon[] = [];
  const store = makeS3Store(config.s3, s3.client);
  return {
    root: dir.path,
    ftp,
    s3,
    redis,
    prefix,
    config,
    logs,
    state: makeRedisState(redis, prefix),
    vela,
    store,
    async start({ config: configOverride, ...overrides } = {}) {
      const d = await startDaemon(configOverride ?? config, {
        log: logs.log,
        store,
        reconcileMs: 3_600_000,
        poolIdleMs: 500,
        ...overrides,
      });
      daemons.push(d);
      return d;
    },
    async stop() {
      await Promise.allSettled(daemons.map((d) => d.close()));
      // Keep the evidence: FTPSYNC_TEST_LOGS=<dir> writes each environment's daemon log there.
      const logDir = process.env.FTPSYNC_TEST_LOGS;
      if (logDir) await writeFile(join(logDir, `${prefix}.log`), logs.text()).catch(() => {});
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
      await Promise.allSettled([ftp.stop(), s3.stop(), vela?.close()]);
      await dir.cleanup();
    },
  };
}

/**
 * Files the queue's completed jobs synced (kept with `worker.keepCompleted`): a group job counts as the
 * files that ended in it (those it handed on complete as jobs of their own).
 */
export async function completedFiles(queue: Queue): Promise<number> {
  let files = 0;
  for (const job of await queue.getJobs(['completed'])) {
    const result = job.returnvalue as { outcome?: string; synced?: number } | undefined;
    files += result?.outcome === 'group' ? (result.synced ?? 0) : 1;
  }
  return files;
}

/** Waits until the queue has nothing waiting, active or delayed. */
export async function waitIdle(queue: Queue, timeoutMs = 60_000): Promise<Record<string, number>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
    if (!c.waiting && !c.active && !c.delayed && !c.prioritized) return c;
    if (Date.now() > until) throw new Error(`queue not idle after ${timeoutMs} ms: ${JSON.stringify(c)}`);
    await delay(100);
  }
}
