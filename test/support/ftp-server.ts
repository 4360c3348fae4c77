import type { EventEmitter } from 'node:events';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { FileSystem, type FtpConnection, FtpSrv } from 'ftp-srv';

/**
 * Faults an in-process FTP server injects. The object is read on every command, so a test may
 * change it while clients are connected. A `path` matches the absolute path from the FTP root
 * (`/calls/a.wav`); a string may omit the leading `/`.
 */
export interface FtpFaults {
  /**
   * RETR of a matching path sends `bytes` bytes, then:
   * - `'abort'` (default): the data connection is destroyed and the control connection answers
   *   `551` — basic-ftp's `downloadTo` rejects (after ending its destination stream!).
   * - `'truncate'`: the data connection is closed cleanly and the server answers `226` —
   *   `downloadTo` resolves although fewer bytes than listed arrived.
   */
  cutDataAfterBytes?: { path: RegExp | string; bytes: number; mode?: 'abort' | 'truncate' };
  /** RETR of a matching path is answered with `code` (default 550: the file vanished). */
  failRetr?: { path: RegExp | string; code?: number };
  /** A login (PASS) while this many sessions are logged in gets `421` and the connection is closed. */
  maxLogins?: number;
  /** New connections are accepted but never get the 220 banner (nor any reply). */
  hangAfterConnect?: boolean;
}

export interface FtpServerOptions {
  /** Directory served as `/`. */
  root: string;
  /** user → password; default `{ test: 'secret' }`. */
  users?: Record<string, string>;
  faults?: FtpFaults;
}

export interface FtpTestServer {
  host: '127.0.0.1';
  port: number;
  /** `ftp://127.0.0.1:<port>` (no credentials). */
  url: string;
  stop(): Promise<void>;
  /** Changes (or adds) a user's password for later logins. */
  setPassword(user: string, password: string): void;
  /** Sessions logged in right now. */
  logins(): number;
  /** The most sessions that were logged in at the same time. */
  maxConcurrentLogins(): number;
  /** Logins refused with 421 because of `faults.maxLogins`. */
  refusedLogins(): number;
  /** Read on every command: change its fields (or replace it) to inject or clear faults at run time. */
  faults: FtpFaults;
}

/** The ftp-srv internals this harness uses; its bundled typings do not declare them. */
interface Connection {
  id: string;
  commands: {
    parse(message: string): { directive: string; arg: string | null };
    handle(command: unknown): unknown;
  };
  fs?: { currentDirectory(): string };
  connector: { end(): void };
  reply(code: number, message?: string): PromiseLike<unknown>;
  close(code?: number, message?: string): PromiseLike<unknown>;
}

/** ftp-srv logs through bunyan by default; everything goes nowhere instead. */
const silentLog = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  fatal() {},
  child: () => silentLog,
};

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;

function matches(pattern: RegExp | string, path: string): boolean {
  if (typeof pattern === 'string') return path === pattern || path === `/${pattern}`;
  pattern.lastIndex = 0;
  return pattern.test(path);
}

/** The local file system, except that RETR streams obey `faults.cutDataAfterBytes`. */
class FaultFileSystem extends FileSystem {
  constructor(
    connection: FtpConnection,
    root: string,
    private readonly faults: () => FtpFaults,
  ) {
    super(connection, { root, cwd: '/' });
  }

  override async read(fileName: string, opts: { start?: number } = {}) {
    const { stream, clientPath } = (await super.read(fileName, opts)) as {
      stream: Readable;
      clientPath: string;
    };
    const cut = this.faults().cutDataAfterBytes;
    if (!cut || !matches(cut.path, clientPath)) return { stream, clientPath };
    return { stream: cutAfter(stream, cut.bytes, cut.mode ?? 'abort'), clientPath };
  }
}

/**
 * Passes the first `bytes` bytes of `source` on, then ends or fails. ftp-srv writes each chunk to
 * the data socket before it asks for the next, and the pause before failing lets the last write
 * reach the socket, so the client does receive exactly `bytes` bytes.
 */
function cutAfter(source: Readable, bytes: number, mode: 'abort' | 'truncate'): Readable {
  async function* take() {
    let sent = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      const part = chunk.subarray(0, bytes - sent);
      sent += part.length;
      if (part.length > 0) yield part;
      if (sent >= bytes) break;
    }
    if (mode === 'abort') {
      await delay(50);
      throw new Error('data connection cut (injected fault)');
    }
  }
  return Readable.from(take(), { objectMode: false, highWaterMark: 1 });
}

/**
 * Starts ftp-srv on a free 127.0.0.1 port (passive mode on 127.0.0.1, kernel-chosen data ports).
 * Users log in with the passwords in `users`; a wrong one gets 530.
 */
export async function startFtpServer(opts: FtpServerOptions): Promise<FtpTestServer> {
  const users = new Map(Object.entries(opts.users ?? { test: 'secret' }));
  let faults: FtpFaults = opts.faults ?? {};
  const loggedIn = new Set<string>();
  let maxConcurrent = 0;
  let refused = 0;

  // ftp-srv adds SIGTERM/SIGINT/SIGQUIT handlers that exit the process; they are removed on stop.
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  const server = new FtpSrv({
    url: 'ftp://127.0.0.1:0',
    pasv_url: '127.0.0.1',
    // 0..0: every passive listener binds port 0, so the kernel picks a free port (no range to race on).
    pasv_min: 0,
    pasv_max: 0,
    anonymous: false,
    log: silentLog,
  });
  const added = SIGNALS.flatMap((s) =>
    process.listeners(s).flatMap((l) => (before.get(s)?.has(l) ? [] : [[s, l] as const])),
  );

  server.on('login', ({ connection, username, password }, resolve, reject) => {
    if (users.get(username) !== password) {
      reject(new Error('Login incorrect'));
      return;
    }
    const id = (connection as unknown as Connection).id;
    loggedIn.add(id);
    maxConcurrent = Math.max(maxConcurrent, loggedIn.size);
    resolve({ fs: new FaultFileSystem(connection, opts.root, () => faults) });
  });

  const events = server as unknown as EventEmitter;
  events.on('disconnect', ({ id }: { id: string }) => loggedIn.delete(id));
  events.on('connect', ({ connection }: { connection: Connection }) => {
    if (faults.hangAfterConnect) {
      // The banner is the first reply; one that never resolves also never resumes the socket.
      connection.reply = () => new Promise(() => {});
      return;
    }
    interceptCommands(connection);
  });
  // ftp-srv reports socket errors (clients vanishing mid-transfer) as events; nothing to do.
  events.on('client-error', () => {});
  events.on('server-error', () => {});

  function interceptCommands(connection: Connection): void {
    const commands = connection.commands;
    const handle = commands.handle.bind(commands);
    commands.handle = (message: unknown) => {
      const command = typeof message === 'string' ? commands.parse(message) : message;
      const { directive, arg } = command as { directive: string; arg: string | null };
      const injected = injectFault(connection, directive, arg);
      const result = injected ?? handle(command);
      // ftp-srv chains commands with no catch; a failure must not become an unhandled rejection.
      return Promise.resolve(result).catch(() => {});
    };
  }

  function injectFault(connection: Connection, directive: string, arg: string | null) {
    if (directive === 'PASS' && faults.maxLogins !== undefined && loggedIn.size >= faults.maxLogins) {
      refused++;
      return connection.close(421, 'Too many users logged in, try again later.');
    }
    const fail = faults.failRetr;
    if (directive === 'RETR' && fail && connection.fs && arg) {
      const path = posix.resolve(connection.fs.currentDirectory(), arg);
      if (matches(fail.path, path)) {
        connection.connector.end();
        return connection.reply(fail.code ?? 550, `${arg}: No such file or directory`);
      }
    }
    return undefined;
  }

  await server.listen();
  const address = (server as unknown as { server: { address(): { port: number } } }).server.address();
  const port = address.port;

  let stopping: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    url: `ftp://127.0.0.1:${port}`,
    get faults() {
      return faults;
    },
    set faults(next) {
      faults = next;
    },
    setPassword: (user, password) => void users.set(user, password),
    logins: () => loggedIn.size,
    maxConcurrentLogins: () => maxConcurrent,
    refusedLogins: () => refused,
    stop() {
      stopping ??= (async () => {
        for (const [signal, listener] of added) process.removeListener(signal, listener);
        await server.close();
      })();
      return stopping;
    },
  };
}
