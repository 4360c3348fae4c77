/**
 * `rclone copy :ftp: :s3:` (Debian's rclone) under `/usr/bin/time`, which reports its CPU time and
 * peak RSS. Remotes are given as connection strings: no rclone configuration file is read or written.
 */
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const RCLONE = '/usr/bin/rclone';
export const TIME = '/usr/bin/time';

export function missingTools(): string[] {
  const missing: string[] = [];
  for (const [bin, pkg] of [
    [RCLONE, 'rclone'],
    [TIME, 'time'],
    ['/usr/sbin/vsftpd', 'vsftpd'],
    ['/usr/bin/redis-server', 'redis-server'],
  ] as const) {
    try {
      accessSync(bin, constants.X_OK);
    } catch {
      missing.push(`${bin} is missing: apt-get install ${pkg}`);
    }
  }
  return missing;
}

export async function rcloneVersion(): Promise<string> {
  const { stdout } = await promisify(execFile)(RCLONE, ['version']);
  return stdout.split('\n')[0]?.trim() ?? 'rclone';
}

/** `rclone obscure` of a password, as connection strings want it. */
export async function obscure(password: string): Promise<string> {
  const { stdout } = await promisify(execFile)(RCLONE, ['obscure', password]);
  return stdout.trim();
}

export interface RcloneRun {
  ftp: { host: string; port: number; obscuredPass: string };
  s3: { endpoint: string; bucket: string; accessKeyId?: string; secretAccessKey?: string };
  /** Directory on the FTP server, no leading slash. */
  dir: string;
  /** Key prefix in the bucket. */
  prefix: string;
  transfers: number;
  checkers: number;
  /** Where /usr/bin/time writes its figures. */
  workDir: string;
}

export interface RcloneResult {
  wallMs: number;
  cpuSeconds: number;
  maxRssKiB: number;
}

/**
 * The FTP connections are capped like ftp-sync's: rclone's `concurrency` must be one more than
 * max(--transfers, --checkers) with `--check-first` (its documentation: fewer can deadlock), so rclone
 * gets the transfers' connections plus one for its listing.
 */
export function rcloneArgs(r: RcloneRun): string[] {
  const src =
    `:ftp,host=${r.ftp.host},port=${r.ftp.port},user=anonymous,pass=${r.ftp.obscuredPass},` +
    `concurrency=${Math.max(r.transfers, r.checkers) + 1}:/${r.dir}`;
  const dst =
    `:s3,provider=Other,endpoint='${r.s3.endpoint}',access_key_id=${r.s3.accessKeyId ?? 'S3RVER'},` +
    `secret_access_key=${r.s3.secretAccessKey ?? 'S3RVER'},` +
    `region=us-east-1,force_path_style=true,no_check_bucket=true:${r.s3.bucket}/${r.prefix}`;
  return [
    'copy',
    src,
    dst,
    '--transfers',
    String(r.transfers),
    '--checkers',
    String(r.checkers),
    '--check-first',
    '-q',
  ];
}

export async function runRclone(r: RcloneRun): Promise<RcloneResult> {
  const out = join(r.workDir, `time-${process.hrtime.bigint()}.txt`);
  const args = ['-f', '%e %U %S %M', '-o', out, RCLONE, ...rcloneArgs(r)];
  const started = performance.now();
  // No rclone.conf is needed: every remote is a connection string. A CA bundle meant for real HTTPS
  // endpoints makes rclone's S3 client refuse a plain-HTTP one.
  const childEnv: NodeJS.ProcessEnv = { ...process.env, RCLONE_CONFIG: '/dev/null' };
  delete childEnv.AWS_CA_BUNDLE;
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const proc = spawn(TIME, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: childEnv,
    });
    let stderr = '';
    proc.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    proc.on('exit', (c) => resolve({ code: c, stderr }));
  });
  const wallMs = performance.now() - started;
  if (code !== 0) throw new Error(`rclone copy ${r.dir} exited with ${code}: ${stderr.trim()}`);
  const [, user = 0, sys = 0, rss = 0] = (await readFile(out, 'utf8')).trim().split(/\s+/).map(Number);
  return { wallMs, cpuSeconds: user + sys, maxRssKiB: rss };
}
