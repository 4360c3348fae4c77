/**
 * Ceph's RADOS Gateway (Debian's `radosgw`, Ceph 16.2) as a production-grade S3 on loopback: it checks
 * what s3rver does not (POST policies, multipart listing and abort). `startRgw()` runs a one-node
 * cluster from `rgw/rgw.sh` in a temp dir: one ceph-mon and one memstore ceph-osd, no ceph-mgr, no
 * cephx, radosgw's beast frontend on a free 127.0.0.1 port, one user with fresh keys. A start takes
 * ~5-15 s (radosgw creates its pools first), so test files start one in `beforeAll`.
 *
 * RGW 16 as seen by @aws-sdk/client-s3 3.x (checked in test/rgw.test.ts):
 * - Streamed `aws-chunked` bodies with a trailing checksum are refused with 411 MissingContentLength:
 *   the client needs `requestChecksumCalculation: 'WHEN_REQUIRED'` (the daemon's client sets it).
 * - Path-style requests; any signing region is accepted.
 * - ListMultipartUploads and AbortMultipartUpload work (s3rver answers 501 and 405); a multipart
 *   object's ETag is S3's `<md5 of part md5s>-<n>`.
 * - Stop with SIGKILL: a memstore OSD writes its whole store to disk on a clean stop.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, ListBucketsCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { sdkLogger } from '../../src/adapters/s3.js';
import { tempDir } from './fs.js';
import { freePort } from './ports.js';

export interface Rgw {
  /** `http://127.0.0.1:PORT`; path-style requests. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** SIGKILLs the daemons and removes the cluster's directory. Idempotent. */
  stop(): Promise<void>;
  /** CPU seconds (user + system) the daemons (ceph-mon, ceph-osd, radosgw) have used so far. */
  cpuSeconds(): number;
}

const SCRIPT = fileURLToPath(new URL('./rgw/rgw.sh', import.meta.url));
const run = promisify(execFile);

/** What `rgw.sh` runs, and the Debian package of each. */
const BINARIES: Record<string, string> = {
  'ceph-mon': 'ceph-mon',
  monmaptool: 'ceph-base',
  'ceph-osd': 'ceph-osd',
  ceph: 'ceph-common',
  radosgw: 'radosgw',
  'radosgw-admin': 'radosgw',
};
export const RGW_DEBIAN_PACKAGES = ['ceph-mon', 'ceph-osd', 'radosgw'];

/** Until S3 answers, start included; the daemons' log tails are in the error after that. */
const START_TIMEOUT_MS = 90_000;

function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Whether the Ceph binaries `startRgw` needs are installed (on PATH). */
export function rgwAvailable(): { ok: true } | { ok: false; why: string } {
  const missing = Object.keys(BINARIES).filter((b) => !onPath(b));
  if (missing.length === 0) return { ok: true };
  const packages = [...new Set(missing.map((b) => BINARIES[b]))];
  return {
    ok: false,
    why:
      `RADOS Gateway not installed: ${missing.join(', ')} not on PATH ` +
      `(apt-get install -y --no-install-recommends ${RGW_DEBIAN_PACKAGES.join(' ')}; .ci/run does; ` +
      `missing packages: ${packages.join(', ')})`,
  };
}

/**
 * For `describe.skipIf(!haveRgw())`: true when the Ceph binaries are installed; on a machine without
 * them false (the tests are skipped, with the reason on stderr), but under CI=true it throws, so the
 * test file fails instead of skipping.
 */
export function haveRgw(): boolean {
  const available = rgwAvailable();
  if (available.ok) return true;
  if (process.env.CI === 'true') throw new Error(available.why);
  process.stderr.write(`skipping RADOS Gateway tests: ${available.why}\n`);
  return false;
}

/** An S3 client for `rgw`: path style, its keys, no default checksums (RGW 16 needs that). */
export function rgwClient(rgw: Rgw, overrides: S3ClientConfig = {}): S3Client {
  return new S3Client({
    endpoint: rgw.endpoint,
    forcePathStyle: true,
    region: rgw.region,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    logger: sdkLogger(),
    ...overrides,
  });
}

/** Which of the daemons `rgw.sh` started (pids in DIR/pids: mon, osd, radosgw) are gone. */
function deadDaemons(dir: string): string[] {
  let pids: string[];
  try {
    pids = readFileSync(join(dir, 'pids'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
  const names = ['ceph-mon', 'ceph-osd', 'radosgw'];
  return pids.flatMap((pid, i) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') ? [names[i] ?? pid] : [];
    } catch {
      return [names[i] ?? pid];
    }
  });
}

/** CPU seconds of the daemons in DIR/pids, from /proc (clock ticks of 1/100 s). */
function daemonCpuSeconds(dir: string): number {
  let ticks = 0;
  let pids: string[];
  try {
    pids = readFileSync(join(dir, 'pids'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return 0; // stopped
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime: fields 14 and 15 of the line, 12 and 13 after the command name.
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks / 100;
}

/** The last lines of each daemon's log, for a start that failed. */
function logTails(dir: string): string {
  const files = ['setup.log', 'mon.a.log', 'osd.0.log', 'client.rgw.log', 'mon.out', 'osd.out', 'rgw.out'];
  const out: string[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(join(dir, 'log', f), 'utf8');
    } catch {
      continue;
    }
    const lines = text.trimEnd().split('\n').slice(-15);
    if (lines.join('').trim()) out.push(`--- ${f} (last ${lines.length} lines)\n${lines.join('\n')}`);
  }
  return out.join('\n') || '(no logs)';
}

/**
 * Starts a one-node Ceph with radosgw on loopback and waits until a signed S3 request succeeds;
 * creates `opts.bucket` when given. Throws if the Ceph binaries are missing (see `rgwAvailable`) or
 * if S3 does not answer within 90 s, with the daemons' log tails.
 */
export async function startRgw(opts: RgwOptions = {}): Promise<Rgw> {
  const available = rgwAvailable();
  if (!available.ok) throw new Error(available.why);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      // A free port may be taken between freePort() and the bind: one more try on fresh ports.
      if (attempt >= 2 || !(err instanceof PortTaken)) throw err;
    }
  }
}

class PortTaken extends Error {}

export interface RgwOptions {
  /** Created once S3 answers. */
  bucket?: string;
  /**
   * The memstore OSD's size (default 2 GiB). Deleted objects' data stays in it until RGW's garbage
   * collection (hours), so a benchmark that writes several GB needs more.
   */
  memstoreBytes?: number;
}

async function startOnce(opts: RgwOptions): Promise<Rgw> {
  const started = Date.now();
  const dir = await tempDir('rgw');
  const monPort = await freePort();
  let rgwPort = await freePort();
  while (rgwPort === monPort) rgwPort = await freePort();
  const rgw: Rgw = {
    endpoint: `http://127.0.0.1:${rgwPort}`,
    accessKeyId: `RGW${randomBytes(8).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(20).toString('hex'),
    region: 'us-east-1',
    stop: async () => {},
    cpuSeconds: () => daemonCpuSeconds(dir.path),
  };
  let stopping: Promise<void> | undefined;
  rgw.stop = () => {
    stopping ??= run('bash', [SCRIPT, 'stop', dir.path]).then(
      () => undefined,
      () => dir.cleanup(),
    );
    return stopping;
  };
  const fail = async (what: string): Promise<never> => {
    const tails = logTails(dir.path);
    await rgw.stop();
    const portTaken = /Address already in use|bind unable to bind|failed to bind/i.test(tails);
    const message = `RADOS Gateway (mon port ${monPort}, S3 port ${rgwPort}): ${what}\n${tails}`;
    throw portTaken ? new PortTaken(message) : new Error(message);
  };

  try {
    await run(
      'bash',
      [
        SCRIPT,
        'start',
        dir.path,
        String(monPort),
        String(rgwPort),
        rgw.accessKeyId,
        rgw.secretAccessKey,
        String(process.pid),
      ],
      {
        timeout: START_TIMEOUT_MS,
        ...(opts.memstoreBytes && {
          env: { ...process.env, RGW_MEMSTORE_BYTES: String(Math.round(opts.memstoreBytes)) },
        }),
      },
    );
  } catch (err) {
    return fail(`rgw.sh start failed: ${(err as Error).message.split('\n')[0]}`);
  }

  const client = rgwClient(rgw, { maxAttempts: 1 });
  let last = 'no answer yet';
  try {
    for (;;) {
      try {
        await client.send(new ListBucketsCommand({}));
        if (opts.bucket) await client.send(new CreateBucketCommand({ Bucket: opts.bucket }));
        return rgw;
      } catch (err) {
        const e = err as Error & { $metadata?: { httpStatusCode?: number } };
        last = `${e.name}${e.$metadata?.httpStatusCode ? ` (${e.$metadata.httpStatusCode})` : ''}: ${e.message}`;
      }
      const dead = deadDaemons(dir.path);
      if (dead.length)
        return await fail(`${dead.join(', ')} exited during the start; last S3 error: ${last}`);
      if (Date.now() - started > START_TIMEOUT_MS) {
        return await fail(`no signed S3 answer within ${START_TIMEOUT_MS / 1000} s; last error: ${last}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.destroy();
  }
}
