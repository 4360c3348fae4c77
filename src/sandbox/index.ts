/**
 * A throw-away world for ftp-sync, all on 127.0.0.1 and all under one temporary directory: Redis,
 * an FTP server with one user and home directory per tenant, an S3-compatible store with its bucket,
 * and the Vela stand-in. `stop()` stops every part and removes the directory.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AllocationSetting, startVelaStandin, type VelaStandin } from '../standin/vela-standin.js';
import { type FtpUser, type SandboxFtp, startFtp } from './ftp.js';
import { type SandboxRedis, startRedis } from './redis.js';
import { type SandboxS3, startS3 } from './s3.js';
import { makeTeardown } from './teardown.js';

export { SandboxError } from './errors.js';
export { freePort } from './ports.js';
export { SANDBOX_S3_CREDENTIALS, SANDBOX_S3_REGION } from './s3.js';
export { sineWav } from './wav.js';

export interface SandboxOptions {
  /** One FTP user (named after the org) and home directory per tenant. */
  orgs: string[];
  bucket: string;
  /** Vela stand-in answers per org; an org not listed gets a 404. */
  allocations: Record<string, AllocationSetting>;
  /** Use this Redis when it answers (REDIS_URL); otherwise spawn redis-server. */
  redisUrl?: string;
  /** Keep the directory (data, logs, config) at `stop()`. @defaultValue false */
  keep?: boolean;
}

export interface SandboxTenant extends FtpUser {
  user: string;
}

export interface Sandbox {
  /** The temporary directory everything lives in. */
  dir: string;
  redis: SandboxRedis;
  ftp: SandboxFtp & { tenants: Record<string, SandboxTenant> };
  s3: SandboxS3;
  vela: VelaStandin & { token: string };
  /** Stops every part (newest first) and removes `dir`; resolves with what failed. Idempotent. */
  stop(): Promise<string[]>;
  /** Last resort on a forced exit: kills Redis and removes `dir`, synchronously. */
  killNow(): void;
}

const secret = () => randomBytes(12).toString('base64url');

export async function startSandbox(opts: SandboxOptions): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'ftp-sync-demo-'));
  const teardown = makeTeardown();
  const removeDir = () => (opts.keep ? undefined : rm(dir, { recursive: true, force: true }));
  teardown.add('temp dir', removeDir);
  let redis: SandboxRedis | undefined;
  const killNow = () => {
    redis?.killNow();
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const sub = async (...parts: string[]) => {
      const path = join(dir, ...parts);
      await mkdir(path, { recursive: true });
      return path;
    };

    redis = await startRedis({ dir: await sub('redis'), url: opts.redisUrl });
    teardown.add('redis', redis.stop);

    const tenants: Record<string, SandboxTenant> = {};
    for (const org of opts.orgs) {
      tenants[org] = { user: org, password: secret(), home: await sub('ftp', org) };
    }
    const ftp = await startFtp({ users: tenants });
    teardown.add('ftp', ftp.stop);

    const s3 = await startS3({ dir: await sub('s3'), bucket: opts.bucket });
    teardown.add('s3', s3.stop);

    const token = secret();
    const vela = await startVelaStandin({ token, allocations: opts.allocations });
    teardown.add('vela stand-in', vela.close);

    return {
      dir,
      redis,
      ftp: { ...ftp, tenants },
      s3,
      vela: Object.assign(vela, { token }),
      stop: teardown.run,
      killNow,
    };
  } catch (err) {
    await teardown.run();
    throw err;
  }
}
