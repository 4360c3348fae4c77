/**
 * The only file that imports basic-ftp: one `SourceSession` per logged-in control connection.
 */
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { Client, type FileInfo, FileType, type FTPResponse, parseList } from 'basic-ftp';
import type { FtpConfig, TenantConfig } from '../config.js';
import {
  ftpCode,
  NotFoundError,
  PermanentError,
  ResumeRefusedError,
  TenantError,
  TlsError,
  withContext,
} from '../errors.js';
import type { SourceCredentials, SourceEntry, SourceListing, SourceSession } from '../ports/source.js';
import { classifyConnectError, classifyPlainAnswer, NOT_FOUND, replyText, TOO_MANY } from './ftp-errors.js';

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
function tlsOptions(ftp: FtpConfig): ConnectionOptions {
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
  // A fingerprint is not checked here: see enforcePin.
  return opts;
}

/**
 * Fingerprint pinning, enforced on the sockets themselves. Node calls `checkServerIdentity` only when
 * the chain verified, so with a self-signed certificate (the usual reason to pin) a pin handed to
 * `tls.connect` with `rejectUnauthorized: false` is never checked at all. Here the control
 * connection's certificate is checked before the password is sent, and every TLS data connection's
 * as soon as its handshake is done (before any data is read from it).
 */
function enforcePin(client: Client, fingerprint: string, host: string, onDataMismatch: (e: Error) => void) {
  const pinned = normaliseFingerprint(fingerprint);
  const mismatch = (socket: TLSSocket): Error | undefined => {
    const got = socket.getPeerCertificate?.()?.fingerprint256;
    if (got && normaliseFingerprint(got) === pinned) return undefined;
    return new TlsError(
      `TLS verification of ${host} failed: certificate fingerprint ${got ?? '(none)'} does not match ftp.fingerprint`,
    );
  };
  const login = client.login.bind(client);
  client.login = async (user?: string, password?: string) => {
    const err = mismatch(client.ftp.socket as TLSSocket);
    if (err) throw err;
    return login(user, password);
  };
  const ctx = client.ftp;
  const accessor = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(ctx), 'dataSocket');
  if (!accessor?.get || !accessor.set) {
    throw new Error('basic-ftp has no FTPContext.dataSocket accessor: ftp.fingerprint cannot be enforced');
  }
  const { get, set } = accessor;
  Object.defineProperty(ctx, 'dataSocket', {
    configurable: true,
    get() {
      return get.call(this);
    },
    set(socket: TLSSocket | undefined) {
      set.call(this, socket);
      if (typeof socket?.getPeerCertificate !== 'function') return;
      socket.once('secureConnect', () => {
        const err = mismatch(socket);
        if (!err) return;
        onDataMismatch(err);
        socket.destroy(err);
      });
    },
  });
}

/**
 * Parses a listing line by line. basic-ftp picks one format for a whole listing by its *last* line:
 * one trailing line it cannot read (a summary such as `   2 File(s)  1,234 bytes`) either fails the
 * whole directory or, when it starts with a space, makes every line parse as a nameless MLSD entry,
 * so nothing would be synced and nothing said. Here a line no format fits is dropped on its own; a
 * listing of which no line fits is a tenant-level error (the server's format is not supported).
 */
function parseListing(raw: string): FileInfo[] & { unreadable?: string[] } {
  const out: FileInfo[] & { unreadable?: string[] } = [];
  let lines = 0;
  let unreadable: string | undefined;
  let unreadableCount = 0;
  const unreadableLines: string[] = [];
  for (const line of raw.split(/\r?\n/)) {
    if (!line.trim()) continue;
    lines++;
    try {
      out.push(...parseList(line));
    } catch {
      unreadableCount++;
      unreadable ??= line;
      unreadableLines.push(line);
    }
  }
  if (lines > 0 && unreadableCount === lines) {
    throw new TenantError(
      `listing format not supported (MLSD, unix or DOS expected), first line: ${JSON.stringify(unreadable?.slice(0, 100))}`,
    );
  }
  if (unreadableLines.length) out.unreadable = unreadableLines;
  return out;
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

/** Idle time on the control connection before TCP keep-alive probes start (and between them). */
export const CONTROL_KEEPALIVE_MS = 30_000;

/** Connects and logs in. Throws `TenantError` for a bad login or TLS failure; other errors are transient. */
export async function connectFtp(
  tenant: TenantConfig,
  creds: SourceCredentials,
  opts: FtpConnectOptions = {},
): Promise<SourceSession> {
  const { ftp } = tenant;
  if (!ftp) throw new TenantError(`tenant "${tenant.org}" has no ftp source`);
  const client = new Client(opts.timeoutMs ?? 30_000);
  client.parseList = parseListing;
  let pinError: Error | undefined;
  if (ftp.secure !== false && ftp.fingerprint) {
    enforcePin(client, ftp.fingerprint, ftp.host, (e) => {
      pinError = e;
    });
  }
  // The client's timeout covers each wait on the control socket, but not basic-ftp's TLS upgrade: a
  // server that takes AUTH TLS and then goes silent would hang the login. So the whole login (banner,
  // TLS, USER/PASS, FEAT, …) has a deadline too, twice the per-wait one.
  const loginMs = 2 * (opts.timeoutMs ?? 30_000);
  let deadline: NodeJS.Timeout | undefined;
  const tooSlow = new Promise<never>((_, reject) => {
    deadline = setTimeout(() => {
      client.close();
      reject(
        Object.assign(new Error(`Timeout: login did not complete within ${loginMs} ms`), {
          code: 'ETIMEDOUT',
        }),
      );
    }, loginMs);
  });
  try {
    await Promise.race([
      client.access({
        host: ftp.host,
        port: ftp.port,
        user: creds.user,
        password: creds.password,
        secure: ftp.secure === false ? false : ftp.secure === 'implicit' ? 'implicit' : true,
        secureOptions: ftp.secure === false ? undefined : tlsOptions(ftp),
      }),
      tooSlow,
    ]);
  } catch (err) {
    // Refused before the control connection became TLS: `AUTH TLS` itself was refused.
    const authRefused =
      ftp.secure === 'explicit' &&
      !(client.ftp.socket as Partial<TLSSocket>).encrypted &&
      (ftpCode(err) ?? 0) >= 500 &&
      !TOO_MANY.test(replyText(err));
    client.close();
    if (authRefused) {
      throw new TlsError(
        `${ftp.host} refused AUTH TLS ("${replyText(err)}"): it offers no explicit FTPS (check ftp.secure)`,
      );
    }
    if (ftp.secure === 'implicit' && (err as { code?: unknown })?.code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
      throw await classifyPlainAnswer(err, ftp.host, ftp.port);
    }
    throw classifyConnectError(err, ftp.host);
  } finally {
    clearTimeout(deadline);
  }
  // The control connection sits idle while a long transfer runs on the data connection (basic-ftp
  // sends nothing on it meanwhile), and NAT gateways and firewalls drop idle connections after a few
  // minutes. TCP keep-alive probes after CONTROL_KEEPALIVE_MS of silence keep such a path open
  // without a command the server would have to answer mid-transfer.
  client.ftp.socket.setKeepAlive(true, CONTROL_KEEPALIVE_MS);
  const replies = trackListReplies(client);
  const exact = client.availableListCommands.some((c) => c.startsWith('MLSD'));
  let broken = false;
  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (pinError) {
        broken = true;
        throw pinError;
      }
      const code = ftpCode(err);
      // A reply code in 5xx leaves the connection usable; anything else (timeouts, resets) does not.
      if (!(code && code >= 500 && code < 600)) broken = true;
      if (code === 550) {
        const message = `${what}: ${(err as Error).message}`;
        // 550 is also "permission denied": only a reply that says so is "not found".
        if (NOT_FOUND.test((err as Error).message)) throw new NotFoundError(message, { cause: err });
        throw new PermanentError(message, { cause: err });
      }
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
  /**
   * RETR, after `REST offset` when `offset` > 0 (basic-ftp's `startAt`). A server that answers REST
   * with 500/501/502/504 (not implemented, bad parameter) cannot resume: ResumeRefusedError, the
   * session stays usable (a 5xx reply).
   */
  const download = (remotePath: string, dest: Writable, offset: number, signal?: AbortSignal) =>
    guard(`download ${remotePath}`, async () => {
      const onAbort = () => {
        broken = true;
        client.close();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let restAnswered = false;
      const track = (res: FTPResponse) => {
        if (res.code === 350) restAnswered = true;
      };
      try {
        if (offset > 0) replies.onReply(track);
        await client.downloadTo(dest, remotePath, offset);
      } catch (err) {
        const code = ftpCode(err);
        if (offset > 0 && !restAnswered && code !== undefined && [500, 501, 502, 504].includes(code)) {
          throw new ResumeRefusedError(`REST ${offset} refused: ${(err as Error).message}`, { cause: err });
        }
        throw err;
      } finally {
        replies.onReply(undefined);
        signal?.removeEventListener('abort', onAbort);
      }
    });

  return {
    tls,
    get healthy() {
      return !broken && !client.closed;
    },
    list: (dir) =>
      guard(`list ${dir}`, async () => {
        replies.take();
        const infos: FileInfo[] & { unreadable?: string[] } = await client.list(dir);
        const entries: SourceListing = infos.map((info) => toEntry(info, exact));
        if (infos.unreadable) entries.unreadable = infos.unreadable;
        const reply = replies.take();
        if (reply && /truncat/i.test(reply)) entries.truncated = reply.replace(/\s+/g, ' ').trim();
        return entries;
      }),
    download: (remotePath, dest, signal) => download(remotePath, dest, 0, signal),
    downloadFrom: (remotePath, dest, offset, signal) => download(remotePath, dest, offset, signal),
    rename: (from, to) =>
      guard(`rename ${from}`, async () => {
        await client.rename(from, to);
      }),
    remove: (path) =>
      guard(`remove ${path}`, async () => {
        await client.remove(path);
      }),
    // One MKD per level, with absolute paths: basic-ftp's ensureDir would change the working
    // directory of a session the pool hands to other work. A level that exists answers 550 (or 521):
    // ignored here; a level that really could not be made fails the RNTO after it, with its reply.
    mkdir: (dir) =>
      guard(`mkdir ${dir}`, async () => {
        const parts = dir.split('/').filter(Boolean);
        for (let i = 1; i <= parts.length; i++) {
          try {
            await client.send(`MKD /${parts.slice(0, i).join('/')}`);
          } catch (err) {
            const code = ftpCode(err);
            if (!(code && code >= 500 && code < 600)) throw err;
          }
        }
      }),
    close: () => client.close(),
  };
}

/**
 * The final reply of the last listing command. A server that caps a listing says so only there
 * (pure-ftpd `-L`: `226 Output truncated to 2000 matches`), and basic-ftp's `list()` drops it.
 */
function trackListReplies(client: Client): {
  take(): string | undefined;
  /** Also shows every reply to `fn` (REST's 350, for a download from an offset); undefined: stop. */
  onReply(fn: ((res: FTPResponse) => void) | undefined): void;
} {
  let last: string | undefined;
  let watcher: ((res: FTPResponse) => void) | undefined;
  const original = client.ftp.handle.bind(client.ftp);
  // basic-ftp formats a stack trace for every command it sends, kept only to report its own misuse
  // (a second command while one runs, which the session pool rules out): about 2 % of the daemon's
  // CPU on small files (bench profile). Errors made while it queues a command get no trace.
  const handle: typeof original = (command, onResponse) => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return original(command, onResponse);
    } finally {
      Error.stackTraceLimit = limit;
    }
  };
  client.ftp.handle = (command, onResponse) =>
    handle(command, (res, task) => {
      if (!(res instanceof Error)) watcher?.(res as FTPResponse);
      if (
        !(res instanceof Error) &&
        res.code >= 200 &&
        res.code < 300 &&
        /^(?:MLSD|LIST|NLST)\b/.test(command ?? '')
      ) {
        last = (res as FTPResponse).message;
      }
      onResponse(res, task);
    });
  return {
    take() {
      const reply = last;
      last = undefined;
      return reply;
    },
    onReply(fn) {
      watcher = fn;
    },
  };
}
