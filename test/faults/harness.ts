/**
 * What every fault case shares: an FTP server (in this process, restartable on its port), S3 behind
 * the fault proxy, Redis (the shared one, or a dedicated one a case may restart), optionally the Vela
 * stand-in; daemons as real child processes (test/support/process.ts) configured by one YAML file;
 * and the checks every case ends with — nothing lost, nothing duplicated:
 *   - every source file is in S3 under its key, with the source's sha256;
 *   - no other object under the tenant's prefix;
 *   - exactly one whole-object write per version (PutObject or CompleteMultipartUpload, as the
 *     proxy saw them), unless the case says otherwise;
 *   - no failed job, nothing left waiting, active or delayed.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { makeRedisState } from '../../src/adapters/redis-state.js';
import { POLL_QUEUE, SYNC_QUEUE } from '../../src/queue/jobs.js';
import { startVelaStandin, type VelaStandin } from '../../src/standin/vela-standin.js';
import { redisUrl, uniquePrefix } from '../support/env.js';
import { sha256, type TempDir, tempDir, writeFileDeep } from '../support/fs.js';
import { type FtpFaults, type FtpTestServer, startFtpServer } from '../support/ftp-server.js';
import {
  type DaemonProcess,
  spawnDaemon,
  started,
  stopAllDaemons,
  writeConfigFile,
} from '../support/process.js';
import { type RedisServer, startRedis } from '../support/redis.js';
import { haveRgw, type Rgw, startRgw } from '../support/rgw.js';
import { getObjectBuffer, listAll, type S3TestServer, s3Env, startS3 } from '../support/s3.js';

export const MB = 1024 * 1024;
export const USER = 'acme';
export const PASSWORD = 'fault-Pa55-3b9d';
export const VELA_TOKEN = 'fault-vela-tok-51c2';

export interface FaultEnvOptions {
  /** A redis-server of its own (a case that restarts Redis must not take the shared one down). */
  dedicatedRedis?: boolean;
  vela?: boolean;
  faults?: FtpFaults;
  /**
   * S3 is this RADOS Gateway (a bucket of its own, behind a fault proxy of its own) instead of
   * s3rver; the file starts one in `beforeAll` (test/support/rgw.ts).
   */
  rgw?: Rgw;
}

export type Role = 'all' | 'poller' | 'worker';

export interface FaultEnv {
  readonly root: string;
  readonly ftp: FtpTestServer;
  readonly s3: S3TestServer;
  readonly redis: Redis;
  readonly redisServer?: RedisServer;
  readonly vela?: VelaStandin;
  readonly prefix: string;
  readonly syncQueue: Queue;
  readonly state: ReturnType<typeof makeRedisState>;
  /** path → sha256 of what the source holds now. */
  readonly files: Map<string, string>;
  /** Writes a source file (random bytes of `content` length, or the content) and remembers its hash. */
  write(path: string, content: number | string | Buffer): Promise<void>;
  /** Re-reads a source file's hash (after a case changed it behind the harness's back). */
  rehash(path: string): Promise<void>;
  /** The tenant `acme` as the configuration has it (to list more tenants in an override). */
  acme(): Record<string, unknown>;
  /** The configuration document `spawn` writes (deep-merged with `overrides`), for an in-process root. */
  configDoc(overrides?: Record<string, unknown>): Record<string, unknown>;
  /** Writes the YAML configuration (deep-merged with `overrides`) and starts a daemon. */
  spawn(role: Role, overrides?: Record<string, unknown>, name?: string): Promise<DaemonProcess>;
  /** Stops the FTP server (connections cut), waits `downMs`, starts it again on the same port. */
  restartFtp(downMs?: number): Promise<void>;
  /** Waits until every file is in S3, marked synced in sync state, and the sync queue is idle. */
  waitSynced(timeoutMs?: number): Promise<number>;
  /** Nothing lost, nothing duplicated (see the top of this file). */
  /**
   * Nothing lost, nothing duplicated. `openUploads`: how many multipart uploads may be left open —
   * `'abort-failed'`: as many as aborts the store refused; a number: at most that many (an abort
   * that could not reach the store at all is not in the proxy's log).
   */
  verify(opts?: {
    writesPerKey?: Record<string, number>;
    openUploads?: number | 'abort-failed';
  }): Promise<void>;
  /** Multipart uploads started and neither completed nor aborted (as the proxy saw them). */
  openUploads(): number;
  /** Whole-object writes (PutObject, CompleteMultipartUpload) with a 2xx answer, per key. */
  writes(): Map<string, number>;
  /** The object's size, or undefined when there is none (asked of s3rver directly). */
  head(key: string): Promise<number | undefined>;
  stop(): Promise<void>;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** The S3 key of a request the proxy saw (`/bucket/acme/a.wav?uploadId=…` → `acme/a.wav`). */
function keyOf(path: string, bucket: string): string {
  const p = path.split('?')[0] ?? '';
  return decodeURIComponent(p.slice(bucket.length + 2));
}

export async function makeFaultEnv(name: string, opts: FaultEnvOptions = {}): Promise<FaultEnv> {
  const dir: TempDir = await tempDir(`faults-${name}`);
  const root = join(dir.path, 'ftp');
  const users = { [USER]: PASSWORD };
  let ftp = await startFtpServer({ root, users, faults: opts.faults });
  await writeFileDeep(root, '.keep', '');
  const s3 = await startS3({ rgw: opts.rgw });
  const redisServer = opts.dedicatedRedis ? await startRedis() : undefined;
  const url = redisServer?.url ?? redisUrl();
  const prefix = uniquePrefix(name);
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  redis.on('error', () => {}); // a case that restarts Redis sees the connection drop; ioredis reconnects
  const vela = opts.vela
    ? await startVelaStandin({ token: VELA_TOKEN, defaultAllocation: { status: 'within' } })
    : undefined;
  const syncQueue = new Queue(SYNC_QUEUE, { connection: redis, prefix });
  syncQueue.on('error', () => {});
  const files = new Map<string, string>();
  const spawned: DaemonProcess[] = [];
  let configs = 0;

  const baseConfig = () => ({
    redis: { url, prefix },
    s3: {
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      multipartThreshold: '8MiB',
      idleTimeout: '10s',
    },
    vela: vela ? { url: vela.url, token: VELA_TOKEN, timeout: '2s' } : { enabled: false },
    defaults: { pollInterval: '1s', minFileAge: '1ms', maxConnections: 2, sourceTimeout: '5s' },
    // Completed jobs kept: the fault tests read attempts and stalls off them.
    worker: {
      concurrency: 4,
      lockDuration: '4s',
      stalledInterval: '2s',
      shutdownTimeout: '5s',
      keepCompleted: '1h',
    },
    log: { level: 'info' },
    tenants: [acme()],
  });
  const acme = () => ({
    org: 'acme',
    ftp: { host: '127.0.0.1', port: ftp.port, secure: false, user: USER, password: PASSWORD },
    dirs: ['/'],
    metadata: { defaultEmail: 'agent@acme.example' },
  });

  const writes = () => {
    const out = new Map<string, number>();
    for (const r of s3.requests()) {
      if (r.status < 200 || r.status >= 300) continue;
      const put = r.method === 'PUT' && !/[?&](partNumber|uploadId)=/.test(r.path);
      const complete = r.method === 'POST' && /[?&]uploadId=/.test(r.path);
      if (!put && !complete) continue;
      const key = keyOf(r.path, s3.bucket);
      out.set(key, (out.get(key) ?? 0) + 1);
    }
    return out;
  };

  const env: FaultEnv = {
    root,
    get ftp() {
      return ftp;
    },
    s3,
    redis,
    redisServer,
    vela,
    prefix,
    syncQueue,
    state: makeRedisState(redis, prefix),
    files,
    acme,
    async write(path, content) {
      const w = await writeFileDeep(root, path, content);
      files.set(path, w.sha256);
    },
    async rehash(path) {
      files.set(path, sha256(await readFile(join(root, path))));
    },
    configDoc: (overrides = {}) => merge(baseConfig(), overrides),
    async spawn(role, overrides = {}, name) {
      const file = await writeConfigFile(
        dir.path,
        merge(baseConfig(), overrides),
        `config-${++configs}.yaml`,
      );
      const proc = spawnDaemon({ config: file, role, name, env: s3Env(s3) });
      spawned.push(proc);
      // Starting node with tsx takes a few seconds, and far longer on a loaded 2-core machine.
      await started(proc, 90_000);
      return proc;
    },
    async restartFtp(downMs = 1000) {
      const { port, faults } = ftp;
      await ftp.stop();
      await delay(downMs);
      ftp = await startFtpServer({ root, users, port, faults });
    },
    async waitSynced(timeoutMs = 60_000) {
      const started = Date.now();
      const until = started + timeoutMs;
      for (;;) {
        const objects = new Map(
          (await listAll(s3.directClient, s3.bucket, 'acme/')).map((o) => [o.key, o.size]),
        );
        const counts = await syncQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        const busy = counts.waiting! + counts.active! + counts.delayed! + counts.prioritized!;
        const missing = [...files.keys()].filter((p) => !objects.has(`acme/${p}`));
        const synced = missing.length || busy ? 0 : (await env.state.allSynced('acme')).size;
        if (!missing.length && !busy && synced === files.size) return Date.now() - started;
        if (Date.now() > until) {
          throw new Error(
            `not synced after ${timeoutMs} ms: missing ${JSON.stringify(missing.slice(0, 5))}, queue ${JSON.stringify(counts)}, sync state ${synced}/${files.size}`,
          );
        }
        await delay(250);
      }
    },
    writes,
    openUploads() {
      const ok = s3.requests().filter((r) => r.status >= 200 && r.status < 300);
      const created = ok.filter((r) => r.method === 'POST' && /[?&]uploads(=|&|$)/.test(r.path)).length;
      const completed = ok.filter((r) => r.method === 'POST' && /[?&]uploadId=/.test(r.path)).length;
      const aborted = ok.filter((r) => r.method === 'DELETE' && /[?&]uploadId=/.test(r.path)).length;
      return created - completed - aborted;
    },
    async head(key) {
      try {
        const res = await s3.directClient.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
        return res.ContentLength ?? 0;
      } catch (err) {
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
          return undefined;
        }
        throw err;
      }
    },
    async verify(o = {}) {
      const objects = await listAll(s3.directClient, s3.bucket, 'acme/');
      expect(objects.map((x) => x.key).sort()).toEqual([...files.keys()].map((p) => `acme/${p}`).sort());
      for (const [path, hash] of files) {
        const body = await getObjectBuffer(s3.directClient, s3.bucket, `acme/${path}`);
        expect(sha256(body), path).toBe(hash);
      }
      const w = writes();
      for (const path of files.keys()) {
        const key = `acme/${path}`;
        expect(w.get(key) ?? 0, `whole-object writes of ${key}`).toBe(o.writesPerKey?.[key] ?? 1);
      }
      let mayBeOpen = o.openUploads ?? 0;
      if (mayBeOpen === 'abort-failed') {
        // An abort the store refused (it was down): left for the hourly cleanup and the lifecycle rule.
        mayBeOpen = s3
          .requests()
          .filter(
            (r) =>
              r.method === 'DELETE' && /[?&]uploadId=/.test(r.path) && !(r.status >= 200 && r.status < 300),
          ).length;
      }
      expect(env.openUploads(), 'multipart uploads left open').toBeLessThanOrEqual(mayBeOpen);
      if (s3.backend === 'rgw') {
        // A store that lists multipart uploads (s3rver cannot) says itself how many are still open.
        const listed = await s3.directClient.send(
          new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: 'acme/' }),
        );
        expect(listed.Uploads?.length ?? 0, 'multipart uploads the store lists as open').toBeLessThanOrEqual(
          mayBeOpen,
        );
      }
      const counts = await syncQueue.getJobCounts('failed', 'waiting', 'prioritized', 'active', 'delayed');
      expect(counts).toMatchObject({ failed: 0, waiting: 0, prioritized: 0, active: 0, delayed: 0 });
      expect((await makeRedisState(redis, prefix).allSynced('acme')).size).toBe(files.size);
      // Invariant 7 on the error paths too: no daemon wrote a secret, whatever failed.
      for (const p of spawned) {
        expect(p.output(), p.name).not.toContain(PASSWORD);
        expect(p.output(), p.name).not.toContain(VELA_TOKEN);
      }
    },
    async stop() {
      const left = await stopAllDaemons();
      await syncQueue.close();
      const keys = await redis.keys(`${prefix}*`).catch(() => [] as string[]);
      if (keys.length) await redis.del(...keys).catch(() => {});
      // Sync state keys are `<prefix>:{org}:…`, matched above; BullMQ's too.
      await redis.quit().catch(() => redis.disconnect());
      await Promise.allSettled([ftp.stop(), s3.stop(), vela?.close(), redisServer?.stop()]);
      await dir.cleanup();
      // A case stops its daemons itself (and checks they exit 0); these were left by a failed one.
      if (left.length) console.warn(`${name}: daemons left running were killed: ${left.join(', ')}`);
    },
  };
  return env;
}

/** The poll queue of an environment (for cases that look at polls). */
export function pollQueue(env: FaultEnv): Queue {
  return new Queue(POLL_QUEUE, { connection: env.redis, prefix: env.prefix });
}

/** Sends SIGTERM to every daemon and expects each to exit 0 within `ms`. */
export async function stopGracefully(procs: DaemonProcess[], ms = 30_000): Promise<void> {
  for (const p of procs) p.kill('SIGTERM');
  for (const p of procs) expect(await p.waitExit(ms), p.name).toEqual({ code: 0, signal: null });
}

/** Log lines of all `procs` whose message matches. */
export function logsOf(procs: DaemonProcess[], msg: string | RegExp) {
  return procs.flatMap((p) =>
    p.lines().filter((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg))),
  );
}

/** Starts a daemon with a slow 24 MB upload and five small files; resolves once a part is in S3. */
export async function midRun(e: FaultEnv, overrides: Record<string, unknown> = {}) {
  await e.write('calls/big.wav', 24 * MB);
  for (let i = 0; i < 5; i++) await e.write(`calls/before-${i}.wav`, 20_000 + i);
  e.ftp.faults.slowData = { path: /big\.wav$/, bytesPerSecond: 6 * MB };
  const d = await e.spawn('all', overrides);
  const until = Date.now() + 30_000;
  while (!e.s3.requests().some((r) => /partNumber=/.test(r.path) && r.status === 200)) {
    if (Date.now() > until) throw new Error('the upload did not start');
    await delay(20);
  }
  return d;
}

/**
 * The same cases twice: against s3rver, and against a RADOS Gateway (one for the file, started
 * before the cases and stopped after them; skipped where Ceph is not installed). `cases` gets the
 * gateway to pass to `makeFaultEnv` (undefined for s3rver), the way test/conformance runs one suite
 * against several adapters.
 */
export function describeEachStore(title: string, cases: (rgw: () => Rgw | undefined) => void): void {
  describe(`${title} (s3rver)`, () => {
    cases(() => undefined);
  });
  describe.skipIf(!haveRgw())(`${title} (RADOS Gateway)`, () => {
    let rgw: Rgw | undefined;
    beforeAll(async () => {
      rgw = await startRgw();
    }, 120_000);
    afterAll(async () => {
      await rgw?.stop();
    });
    cases(() => rgw);
  });
}
