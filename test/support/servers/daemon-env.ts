/**
 * The real daemon (startDaemon, in-process, as ../daemon.ts runs it) against a real FTP server:
 * shared Redis with a unique prefix, an S3 server of its own, logs captured.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { makeRedisState } from '../../../src/adapters/redis-state.js';
import { makeS3Store } from '../../../src/adapters/s3.js';
import { type Config, parseConfig } from '../../../src/config.js';
import { type Daemon, startDaemon } from '../../../src/main.js';
import type { PollOutcome } from '../../../src/sync/poll.js';
import { captureLog, waitIdle } from '../daemon.js';
import { redisUrl, uniquePrefix } from '../env.js';
import { sha256 } from '../fs.js';
import { getObjectBuffer, listAll, type S3TestServer, startS3 } from '../s3.js';

export interface TenantSpec {
  org: string;
  /** The tenant's `ftp` block (tenantFtp(server)). */
  ftp: Record<string, unknown>;
  dirs?: string[];
  minFileAge?: string;
  maxConnections?: number;
  /** More tenant keys (`afterSync`, `moveTo`, …). */
  extra?: Record<string, unknown>;
}

export interface ServerEnv {
  s3: S3TestServer;
  redis: Redis;
  prefix: string;
  config: Config;
  daemon: Daemon;
  logs: ReturnType<typeof captureLog>;
  state: ReturnType<typeof makeRedisState>;
  /** One poll of `org`, repeated while the connection budget is used up (`no-slot`). */
  poll(org: string): Promise<Extract<PollOutcome, { kind: 'done' }>>;
  /** Waits until no sync job is waiting, active or delayed; returns the job counts. */
  idle(timeoutMs?: number): Promise<Record<string, number>>;
  /** sha256 of every object under `<org>/`, keyed by the path after `<org>/`. */
  objects(org: string): Promise<Map<string, string>>;
  /** Successful PutObject requests (not multipart parts) the S3 server got so far. */
  puts(): number;
  stop(): Promise<void>;
}

export async function startServerEnv(
  name: string,
  tenants: TenantSpec[],
  opts: { concurrency?: number } = {},
): Promise<ServerEnv> {
  const s3 = await startS3();
  const prefix = uniquePrefix(name);
  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const config = parseConfig({
    redis: { url: redisUrl(), prefix },
    s3: { bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true, multipartThreshold: '8MiB' },
    vela: { enabled: false },
    defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: 2 },
    worker: { concurrency: opts.concurrency ?? 4 },
    tenants: tenants.map((t) => ({
      org: t.org,
      ftp: t.ftp,
      dirs: t.dirs ?? ['/'],
      ...(t.minFileAge ? { minFileAge: t.minFileAge } : {}),
      ...(t.maxConnections ? { maxConnections: t.maxConnections } : {}),
      metadata: { defaultEmail: `agent@${t.org}.example` },
      ...t.extra,
    })),
  });
  const logs = captureLog();
  const daemon = await startDaemon(config, {
    log: logs.log,
    store: makeS3Store(config.s3, s3.client),
    reconcileMs: 3_600_000,
    poolIdleMs: 500,
  });
  // The job scheduler's first poll runs at once: wait for it, so each test's polls are its own.
  await waitForFirstPolls(
    logs,
    tenants.map((t) => t.org),
  );
  let stopping: Promise<void> | undefined;
  return {
    s3,
    redis,
    prefix,
    config,
    daemon,
    logs,
    state: makeRedisState(redis, prefix),
    async poll(org) {
      const until = Date.now() + 60_000;
      for (;;) {
        const outcome = await daemon.poller!.pollNow(org);
        if (outcome.kind === 'done') return outcome;
        if (Date.now() > until) throw new Error(`poll of ${org}: still ${outcome.kind} after 60 s`);
        await delay(200);
      }
    },
    idle: (timeoutMs = 60_000) => waitIdle(daemon.syncQueue, timeoutMs),
    async objects(org) {
      const out = new Map<string, string>();
      for (const o of await listAll(s3.client, s3.bucket, `${org}/`)) {
        out.set(o.key.slice(org.length + 1), sha256(await getObjectBuffer(s3.client, s3.bucket, o.key)));
      }
      return out;
    },
    puts: () =>
      s3.requests().filter((r) => r.method === 'PUT' && r.status < 300 && !/[?&]partNumber=/.test(r.path))
        .length,
    stop() {
      stopping ??= (async () => {
        await daemon.close().catch(() => {});
        const logDir = process.env.FTPSYNC_TEST_LOGS;
        if (logDir) await writeFile(join(logDir, `${prefix}.log`), logs.text()).catch(() => {});
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length) await redis.del(...keys);
        await redis.quit();
        await s3.stop();
      })();
      return stopping;
    },
  };
}

async function waitForFirstPolls(logs: ReturnType<typeof captureLog>, orgs: string[]): Promise<void> {
  const until = Date.now() + 60_000;
  const polled = () => {
    const done = new Set<string>();
    for (const line of logs.lines) {
      const l = JSON.parse(line) as { msg?: string; org?: string };
      if ((l.msg === 'poll done' || l.msg === 'poll failed') && l.org) done.add(l.org);
    }
    return orgs.every((o) => done.has(o));
  };
  while (!polled()) {
    if (Date.now() > until)
      throw new Error(`no first poll of ${orgs.join(', ')} within 60 s:\n${logs.text()}`);
    await delay(50);
  }
}
