import type { Writable } from 'node:stream';

/** Credentials of one tenant's source. Never put in job data, logs or errors. */
export interface SourceCredentials {
  user: string;
  password: string;
}

/** One entry of a directory listing. */
export interface SourceEntry {
  name: string;
  type: 'file' | 'dir' | 'link' | 'other';
  size: number;
  /** ISO UTC time when exact (MLSD), else the raw LIST time string ('' when none). */
  mtime: string;
  mtimeExact: boolean;
  modifiedAt?: Date;
}

/**
 * A directory listing. `truncated` is the server's reply when it capped the listing (pure-ftpd `-L`):
 * the entries past the cap were not sent. `unreadable`: listing lines no format fits (a name with a
 * newline arrives cut in two lines), dropped from the entries; the poll counts them as unsyncable.
 */
export type SourceListing = SourceEntry[] & { truncated?: string; unreadable?: string[] };

/**
 * One logged-in connection to a tenant's source. One command at a time: callers take a session from
 * the tenant's pool and give it back.
 */
export interface SourceSession {
  /** Lists one directory (absolute path on the server). */
  list(dir: string): Promise<SourceListing>;
  /**
   * Downloads `remotePath` into `dest`. Resolves only when the server confirmed the transfer.
   * Implementations may end `dest` even when the transfer fails (basic-ftp does): callers must not
   * trust `dest` ending as success.
   */
  download(remotePath: string, dest: Writable, signal?: AbortSignal): Promise<void>;
  /**
   * Like `download`, from byte `offset` of the file (FTP `REST` before `RETR`, SFTP a read at an
   * offset): only the bytes from there on reach `dest`. Rejects with `ResumeRefusedError` (before any
   * byte reached `dest`, the session still usable) when the server refuses to start there. Absent:
   * the source cannot resume a download.
   */
  downloadFrom?(remotePath: string, dest: Writable, offset: number, signal?: AbortSignal): Promise<void>;
  /**
   * After-sync actions (src/sync/after-sync.ts). Absolute paths. A refusal rejects with
   * `PermanentError`, a missing file with its subclass `NotFoundError` where the server says so.
   * `rename` replaces an existing target on most servers (OpenSSH's posix-rename, FTP RNFR/RNTO).
   */
  rename?(from: string, to: string): Promise<void>;
  remove?(path: string): Promise<void>;
  /** Creates `dir` and every missing parent; a level that exists already is not an error. */
  mkdir?(dir: string): Promise<void>;
  /** True when the connection is usable for another command. */
  readonly healthy: boolean;
  /** TLS details for `tenants test`. */
  readonly tls?: {
    protocol: string;
    cipher: string;
    authorized: boolean;
    subject?: string;
    fingerprint?: string;
  };
  close(): void;
}
