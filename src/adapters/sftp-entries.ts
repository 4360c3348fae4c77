/**
 * What the SSH/SFTP side says, read into the port's terms: listing entries (lstat attributes, exact
 * UTC times), host key fingerprints as `ssh-keygen -lf` prints them, and connect failures by type.
 */
import { createHash } from 'node:crypto';
import type { FileEntryWithStats } from 'ssh2';
import { LoginRefusedError, TenantError, UnreachableError, withContext } from '../errors.js';
import type { SourceEntry } from '../ports/source.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** The OpenSSH fingerprint of a host key blob: `SHA256:` and unpadded base64, as `ssh-keygen -lf` prints. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The algorithm name at the start of a host key blob (`ssh-ed25519`), for messages. */
export function keyType(key: Buffer): string {
  const len = key.length >= 4 ? key.readUInt32BE(0) : 0;
  return len > 0 && len < 64 && key.length >= 4 + len
    ? key.subarray(4, 4 + len).toString('latin1')
    : 'unknown';
}

/** The SFTP status code of an error (ssh2 sets `code` to the number), if any. */
export function sftpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function toSftpEntry(e: FileEntryWithStats): SourceEntry {
  const { mode, size, mtime } = e.attrs;
  const fmt = typeof mode === 'number' ? mode & S_IFMT : undefined;
  const type = fmt === S_IFREG ? 'file' : fmt === S_IFDIR ? 'dir' : fmt === S_IFLNK ? 'link' : 'other';
  const exact = typeof mtime === 'number' && Number.isFinite(mtime);
  const modifiedAt = exact ? new Date(mtime * 1000) : undefined;
  return {
    name: e.filename,
    type,
    size: typeof size === 'number' ? size : 0,
    mtime: modifiedAt ? modifiedAt.toISOString() : '',
    mtimeExact: exact,
    modifiedAt,
  };
}

/** Classifies a connect/login failure: a bad login, host key or key file is the tenant's; the rest is transient. */
export function classifySftpConnectError(err: unknown, host: string): Error {
  if (err instanceof TenantError) return err;
  const e = err as Error & { level?: string; code?: unknown };
  if (e?.level === 'client-authentication') {
    return new LoginRefusedError(
      `login to ${host} refused (SSH auth): check the user and the password or key`,
    );
  }
  if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN')
    return new UnreachableError(`cannot resolve ${host} (DNS): ${e.message}`, 'dns', { cause: err });
  if (e?.code === 'ECONNREFUSED')
    return new UnreachableError(`connection to ${host} refused: ${e.message}`, 'refused', { cause: err });
  if (e?.level === 'client-timeout')
    return new UnreachableError(`timeout connecting to ${host}: ${e.message}`, 'timeout', { cause: err });
  // Nothing in common with the server (algorithms), or a key file ssh2 cannot use: a fix is needed.
  if (e?.level === 'handshake' || /privateKey|passphrase/i.test(e?.message ?? '')) {
    return new TenantError(`cannot log in to ${host}: ${e.message}`, { cause: err });
  }
  return withContext(err, `cannot connect to ${host}`);
}
