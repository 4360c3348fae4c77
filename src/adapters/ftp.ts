/**
 * The only file that imports basic-ftp: one `SourceSession` per logged-in control connection.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { ConnectionOptions, PeerCertificate, TLSSocket } from 'node:tls';
import { Client, type FileInfo, FileType } from 'basic-ftp';
import type { TenantConfig } from '../config.js';
import { ftpCode, PermanentError, TenantError, withContext } from '../errors.js';
import type { SourceCredentials, SourceEntry, SourceSession } from '../ports/source.js';

export interface FtpConnectOptions {
  /** Socket idle timeout for control and data connections (covers connect, listing and data idle). */
  timeoutMs?: number;
}

/** Normalised fingerprint: upper-case hex pairs joined by `:`. */
function normaliseFingerprint(fp: string): string {
  const hex = fp.replace(/[^0-9a-f]/gi, '').toUpperCase();
  return hex.match(/.{2}/g)?.join(':') ?? '';
}

/**
 * TLS options for one tenant. A fresh object per connection: basic-ftp's `access()` writes into the
 * object it is given (session reuse), and sharing one across tenants would mix their TLS sessions.
 */
function tlsOptions(tenant: TenantConfig): ConnectionOptions {
  const { ftp } = tenant;
  const opts: ConnectionOptions = { rejectUnauthorized: ftp.verifyCertificate && !ftp.fingerprint };
  if (ftp.caFile) {
    try {
      opts.ca = readFileSync(ftp.caFile);
    } catch (err) {
      throw new TenantError(
        `cannot read caFile ${ftp.caFile}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
  }
  if (ftp.fingerprint) {
    const pinned = normaliseFingerprint(ftp.fingerprint);
    opts.checkServerIdentity = (_host: string, cert: PeerCertificate) => {
      if (normaliseFingerprint(cert.fingerprint256 ?? '') !== pinned) {
        return new Error(`certificate fingerprint ${cert.fingerprint256} does not match the pinned one`);
      }
      return undefined;
    };
  }
  return opts;
}

function toEntry(info: FileInfo, exact: boolean): SourceEntry {
  const type =
    info.type === FileType.File
      ? 'file'
      : info.type === FileType.Directory
        ? 'dir'
        : info.type === FileType.SymbolicLink
          ? 'link'
          : 'other';
  const precise = exact && info.modifiedAt !== undefined && !Number.isNaN(info.modifiedAt.getTime());
  return {
    name: info.name,
    type,
    size: info.size,
    mtime: precise ? info.modifiedAt!.toISOString() : info.rawModifiedAt.replace(/\s+/g, ' ').trim(),
    mtimeExact: precise,
    modifiedAt: info.modifiedAt,
  };
}

/** Classifies a login/connect failure into a tenant-level or transient error. */
export function classifyConnectError(err: unknown, host: string): Error {
  const code = ftpCode(err);
  const e = err as NodeJS.ErrnoException & { code?: unknown };
  if (code === 530) return new TenantError(`login to ${host} refused (530): check the user and password`);
  if (code === 421) return withContext(err, `${host} refused the connection (421 too many connections?)`);
  if (typeof e?.code === 'string') {
    if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN')
      return withContext(err, `cannot resolve ${host} (DNS)`);
    if (e.code === 'ECONNREFUSED') return withContext(err, `connection to ${host} refused`);
    if (e.code.startsWith('ERR_TLS') || e.code.includes('CERT') || e.code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
      return new TenantError(`TLS verification of ${host} failed: ${e.message}`, { cause: err });
    }
  }
  if (/certificate|fingerprint/i.test(e?.message ?? '')) {
    return new TenantError(`TLS verification of ${host} failed: ${e.message}`, { cause: err });
  }
  return withContext(err, `cannot connect to ${host}`);
}

/** Connects and logs in. Throws `TenantError` for a bad login or TLS failure; other errors are transient. */
export async function connectFtp(
  tenant: TenantConfig,
  creds: SourceCredentials,
  opts: FtpConnectOptions = {},
): Promise<SourceSession> {
  const client = new Client(opts.timeoutMs ?? 30_000);
  const { ftp } = tenant;
  try {
    await client.access({
      host: ftp.host,
      port: ftp.port,
      user: creds.user,
      password: creds.password,
      secure: ftp.secure === false ? false : ftp.secure === 'implicit' ? 'implicit' : true,
      secureOptions: ftp.secure === false ? undefined : tlsOptions(tenant),
    });
  } catch (err) {
    client.close();
    throw classifyConnectError(err, ftp.host);
  }
  const exact = client.availableListCommands.some((c) => c.startsWith('MLSD'));
  let broken = false;
  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const code = ftpCode(err);
      // A reply code in 5xx leaves the connection usable; anything else (timeouts, resets) does not.
      if (!(code && code >= 500 && code < 600)) broken = true;
      if (code === 550) throw new PermanentError(`${what}: ${(err as Error).message}`, { cause: err });
      throw withContext(err, what);
    }
  };
  const socket = client.ftp.socket as TLSSocket;
  let tls: SourceSession['tls'];
  if (ftp.secure !== false && typeof socket.getPeerCertificate === 'function') {
    const cert = socket.getPeerCertificate();
    tls = {
      protocol: socket.getProtocol() ?? 'unknown',
      cipher: socket.getCipher()?.name ?? 'unknown',
      authorized: socket.authorized,
      subject: [cert?.subject?.CN].flat().join(', ') || undefined,
      fingerprint: cert?.fingerprint256,
    };
  }
  return {
    tls,
    get healthy() {
      return !broken && !client.closed;
    },
    list: (dir) =>
      guard(`list ${dir}`, async () => (await client.list(dir)).map((info) => toEntry(info, exact))),
    download: (remotePath: string, dest: Writable, signal?: AbortSignal) =>
      guard(`download ${remotePath}`, async () => {
        const onAbort = () => {
          broken = true;
          client.close();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
          await client.downloadTo(dest, remotePath);
        } finally {
          signal?.removeEventListener('abort', onAbort);
        }
      }),
    rename: (from, to) =>
      guard(`rename ${from}`, async () => {
        await client.rename(from, to);
      }),
    remove: (path) =>
      guard(`remove ${path}`, async () => {
        await client.remove(path);
      }),
    close: () => client.close(),
  };
}

/** Stable short id of a fingerprint, for logs (never the credential itself). */
export const fingerprintId = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 8);
