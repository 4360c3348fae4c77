/**
 * With sftp-entries.ts, the only files that import ssh2: one `SourceSession` per SSH connection,
 * with one SFTP channel.
 *
 * - The host key is checked against `sftp.hostKeyFingerprint` (`SHA256:…` as `ssh-keygen -lf` prints
 *   it) before any credential is sent; a mismatch is a `TenantError`.
 * - SFTP status answers (no such file, permission denied, failure) leave the connection usable; any
 *   other error (reset, timeout, closed channel) marks the session unhealthy.
 * - Listings come from READDIR, which carries lstat attributes: a symbolic link is reported as `link`
 *   and never followed; modification times are whole seconds in UTC, so `mtimeExact` is true.
 * - `download` resolves only after every byte up to end of file was read and written to `dest` and
 *   `dest` finished. On failure `dest` is left as it is (not ended).
 *
 * ssh2 has an optional native crypto binding; without it (no compiler at install) it uses Node's
 * crypto, which is all this adapter needs.
 */
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import ssh2, { type ConnectConfig, type FileEntryWithStats, type SFTPWrapper } from 'ssh2';
import type { SftpConfig, TenantConfig } from '../config.js';
import { NotFoundError, PermanentError, TenantError, TlsError, toError, withContext } from '../errors.js';
import type { SourceCredentials, SourceSession } from '../ports/source.js';
import {
  classifySftpConnectError,
  hostKeyFingerprint,
  keyType,
  sftpStatus,
  toSftpEntry,
} from './sftp-entries.js';

export interface SftpConnectOptions {
  /** Login (TCP, handshake, authentication), and how long any request may go unanswered. */
  timeoutMs?: number;
}

/** Every SFTP server serves reads of 32 KiB (draft-ietf-secsh-filexfer: the minimum packet it must accept). */
const CHUNK = 32 * 1024;
/** Reads in flight during a download (512 KiB): one read at a time would cap throughput at CHUNK per round trip. */
const READ_AHEAD = 16;

const { STATUS_CODE } = ssh2.utils.sftp;
/** Status answers that retrying will not change. */
const PERMANENT_STATUS = new Set<number>([STATUS_CODE.NO_SUCH_FILE, STATUS_CODE.PERMISSION_DENIED]);

/**
 * Destroys the connection when requests are outstanding and none was answered for `ms`: without it a
 * server that stops answering (but keeps the TCP connection open) would hold a transfer forever.
 */
function makeWatchdog(ms: number, onExpire: (err: Error) => void) {
  let timer: NodeJS.Timeout | undefined;
  let pending = 0;
  let what = '';
  const arm = () => {
    clearTimeout(timer);
    timer = pending
      ? setTimeout(() => onExpire(new Error(`${what}: no answer within ${ms / 1000} s (timeout)`)), ms)
      : undefined;
  };
  return {
    sent(request: string) {
      pending++;
      what = request;
      arm();
    },
    answered() {
      pending = Math.max(0, pending - 1);
      arm();
    },
    stop() {
      pending = 0;
      arm();
    },
  };
}

async function loginConfig(
  sftp: SftpConfig,
  creds: SourceCredentials,
  timeoutMs: number,
  onHostKey: (key: Buffer) => boolean,
): Promise<ConnectConfig> {
  let privateKey: Buffer | undefined;
  if (sftp.privateKeyFile) {
    try {
      privateKey = await readFile(sftp.privateKeyFile);
    } catch (err) {
      throw new TenantError(
        `cannot read privateKeyFile ${sftp.privateKeyFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
  }
  const password = creds.password || undefined;
  // The key first when there is one: a server may lock an account after a few bad passwords.
  const methods = [...(privateKey ? ['publickey'] : []), ...(password !== undefined ? ['password'] : [])];
  return {
    host: sftp.host,
    port: sftp.port,
    username: creds.user,
    password,
    privateKey,
    passphrase: sftp.passphrase,
    authHandler: methods as ConnectConfig['authHandler'],
    readyTimeout: timeoutMs,
    // Detects a dead connection during long transfers (and keeps NAT state alive).
    keepaliveInterval: 10_000,
    keepaliveCountMax: 3,
    hostVerifier: onHostKey,
  };
}

/** Logs `client` in with `config` and opens its SFTP subsystem; `lastError` says why a close came. */
async function openSftpChannel(
  client: ssh2.Client,
  config: ConnectConfig,
  host: string,
  timeoutMs: number,
  lastError: () => Error | undefined,
): Promise<SFTPWrapper> {
  await new Promise<void>((resolve, reject) => {
    const onClose = () => reject(lastError() ?? new Error('connection closed during login'));
    client.once('error', reject);
    client.once('close', onClose);
    client.once('ready', () => {
      client.off('error', reject);
      client.off('close', onClose);
      resolve();
    });
    client.connect(config);
  });
  return new Promise<SFTPWrapper>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no SFTP subsystem within the timeout')), timeoutMs);
    client.sftp((err, channel) => {
      clearTimeout(timer);
      if (err) reject(new TenantError(`${host} offers no SFTP subsystem: ${err.message}`, { cause: err }));
      else resolve(channel);
    });
  });
}

/** Connects and logs in. Throws `TenantError` for a bad login, host key or key file; other errors are transient. */
export async function connectSftp(
  tenant: TenantConfig,
  creds: SourceCredentials,
  opts: SftpConnectOptions = {},
): Promise<SourceSession> {
  const { sftp: cfg } = tenant;
  if (!cfg) throw new TenantError(`tenant "${tenant.org}" has no sftp source`);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const host = `${cfg.host}:${cfg.port}`;

  let hostKeyError: TenantError | undefined;
  const onHostKey = (key: Buffer): boolean => {
    if (!cfg.verifyHostKey) return true;
    const seen = hostKeyFingerprint(key);
    if (seen === cfg.hostKeyFingerprint?.replace(/=+$/, '')) return true;
    hostKeyError = new TlsError(
      `host key of ${host} (${keyType(key)}) is ${seen}, expected ${cfg.hostKeyFingerprint}: check sftp.hostKeyFingerprint (a changed key can also mean someone is in between)`,
    );
    return false;
  };

  const client = new ssh2.Client();
  let closed = false;
  let lastError: Error | undefined;
  // An 'error' without a listener would crash the process; after login it only marks the session broken.
  client.on('error', (err: Error) => {
    lastError = err;
  });
  client.on('close', () => {
    closed = true;
  });

  let sftp: SFTPWrapper;
  try {
    const config = await loginConfig(cfg, creds, timeoutMs, onHostKey);
    sftp = await openSftpChannel(client, config, host, timeoutMs, () => lastError);
  } catch (err) {
    client.destroy();
    throw hostKeyError ?? classifySftpConnectError(err, cfg.host);
  }
  sftp.on('close', () => {
    closed = true;
  });
  sftp.on('error', (err: Error) => {
    lastError = err;
  });

  let broken = false;
  // Why this side ended the connection (timeout, abort): what the requests it failed report.
  let killedFor: Error | undefined;
  const kill = (err: Error) => {
    broken = true;
    killedFor ??= err;
    client.destroy();
  };
  const watchdog = makeWatchdog(timeoutMs, kill);

  /** One SFTP request under the watchdog. */
  const call = <T>(what: string, start: (cb: (err: Error | null | undefined, value: T) => void) => void) =>
    new Promise<T>((resolve, reject) => {
      if (broken || closed) {
        reject(toError(lastError ?? new Error('the SFTP connection is closed')));
        return;
      }
      watchdog.sent(what);
      start((err, value) => {
        watchdog.answered();
        if (err) reject(killedFor ?? err);
        else resolve(value);
      });
    });

  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const status = sftpStatus(err);
      // A status answer leaves the connection usable; anything else (reset, timeout, closed) does not.
      if (status === undefined) broken = true;
      if (status === STATUS_CODE.NO_SUCH_FILE) {
        throw new NotFoundError(`${what}: ${(err as Error).message}`, { cause: err });
      }
      if (status !== undefined && PERMANENT_STATUS.has(status)) {
        throw new PermanentError(`${what}: ${(err as Error).message}`, { cause: err });
      }
      throw withContext(err, what);
    }
  };

  const download = (remotePath: string, dest: Writable, from: number, signal?: AbortSignal) =>
    guard(`download ${remotePath}`, async () => {
      if (signal?.aborted) throw toError(signal.reason ?? new Error('aborted'));
      const onAbort = () => kill(toError(signal?.reason ?? new Error('aborted')));
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const handle = await call<Buffer>(`open ${remotePath}`, (cb) => sftp.open(remotePath, 'r', cb));
        try {
          const read = (offset: number) =>
            call<Buffer>(`read ${remotePath}`, (cb) =>
              sftp.read(handle, Buffer.allocUnsafe(CHUNK), 0, CHUNK, offset, (err, n, buf) =>
                cb(err, buf?.subarray(0, n) as Buffer),
              ),
            );
          await readAhead(read, dest, from, signal);
        } finally {
          if (!broken && !closed) {
            await call<void>(`close ${remotePath}`, (cb) =>
              sftp.close(handle, (err) => cb(err, undefined)),
            ).catch(() => {});
          }
        }
      } catch (err) {
        throw signal?.aborted ? toError(signal.reason ?? err) : err;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    });

  return {
    get healthy() {
      return !broken && !closed;
    },
    list: (dir) =>
      guard(`list ${dir}`, async () => {
        const entries = await call<FileEntryWithStats[]>(`list ${dir}`, (cb) => sftp.readdir(dir, cb));
        return entries.map(toSftpEntry);
      }),
    download: (remotePath, dest, signal) => download(remotePath, dest, 0, signal),
    // A read at an offset: every SFTP server can start anywhere.
    downloadFrom: (remotePath, dest, offset, signal) => download(remotePath, dest, offset, signal),
    rename: (from, to) =>
      guard(`rename ${from}`, async () => {
        // OpenSSH's posix-rename replaces an existing target, as RNFR/RNTO does on most FTP servers.
        await call<void>(`rename ${from}`, (cb) =>
          (sftp as SFTPWrapper & { _extensions?: Record<string, string> })._extensions?.[
            'posix-rename@openssh.com'
          ]
            ? sftp.ext_openssh_rename(from, to, (err) => cb(err, undefined))
            : sftp.rename(from, to, (err) => cb(err, undefined)),
        );
      }),
    remove: (path) =>
      guard(`remove ${path}`, async () => {
        await call<void>(`remove ${path}`, (cb) => sftp.unlink(path, (err) => cb(err, undefined)));
      }),
    mkdir: (dir) =>
      guard(`mkdir ${dir}`, async () => {
        const parts = dir.split('/').filter(Boolean);
        for (let i = 1; i <= parts.length; i++) {
          const level = `/${parts.slice(0, i).join('/')}`;
          // OpenSSH answers FAILURE for a directory that exists: ignored, as any status answer is
          // here; a level that really could not be made fails the rename after it.
          await call<void>(`mkdir ${level}`, (cb) => sftp.mkdir(level, (err) => cb(err, undefined))).catch(
            (err) => {
              if (sftpStatus(err) === undefined) throw err;
            },
          );
        }
      }),
    close: () => {
      watchdog.stop();
      closed = true;
      client.end();
    },
  };
}

/**
 * Copies a file from offset `from` to its end into `dest` with READ_AHEAD reads of CHUNK bytes in flight,
 * written in order; `read(offset)` is one SFTP read (an empty chunk is end of file).
 */
async function readAhead(
  read: (offset: number) => Promise<Buffer>,
  dest: Writable,
  from: number,
  signal?: AbortSignal,
): Promise<void> {
  let destError: Error | undefined;
  const onDestError = (err: Error) => {
    destError ??= err;
  };
  dest.on('error', onDestError);
  const inflight: Promise<Buffer>[] = [];
  const start = (offset: number) => {
    const p = read(offset);
    p.catch(() => {}); // awaited in order below; a dropped one must not become an unhandled rejection
    return p;
  };
  try {
    let next = from;
    for (;;) {
      while (inflight.length < READ_AHEAD) {
        inflight.push(start(next));
        next += CHUNK;
      }
      const chunk = await inflight.shift()!;
      if (signal?.aborted) throw toError(signal.reason ?? new Error('aborted'));
      if (destError) throw destError;
      if (chunk.length === 0) break; // end of file
      if (chunk.length < CHUNK) {
        // A short read: the reads in flight start after a gap. Drop them and go on from here (at the
        // end of a file the next read answers end of file).
        next -= (inflight.length + 1) * CHUNK - chunk.length;
        inflight.length = 0;
      }
      if (!dest.write(chunk)) await drained(dest, signal);
      if (destError) throw destError;
    }
    await finished(dest);
    if (destError) throw destError;
  } finally {
    dest.off('error', onDestError);
  }
}

/** Waits for `dest` to drain; fails when it errors or closes first, or on abort. */
function drained(dest: Writable, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      dest.off('drain', onDrain);
      dest.off('error', onError);
      dest.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error('destination closed before the download finished'));
    const onAbort = () => done(toError(signal?.reason ?? new Error('aborted')));
    dest.on('drain', onDrain);
    dest.on('error', onError);
    dest.on('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Ends `dest` and waits until every write was flushed (`finish`). */
function finished(dest: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (dest.writableFinished) return resolve();
    if (dest.destroyed) return reject(new Error('destination closed before the download finished'));
    const done = (err?: Error) => {
      dest.off('finish', onFinish);
      dest.off('error', onError);
      dest.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onFinish = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () =>
      done(dest.writableFinished ? undefined : new Error('destination closed before it finished'));
    dest.on('finish', onFinish);
    dest.on('error', onError);
    dest.on('close', onClose);
    dest.end();
  });
}
