import type { EventEmitter } from 'node:events';
import { posix } from 'node:path';
import { Readable, Transform } from 'node:stream';
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
   * - `'stall'`: nothing more is sent and nothing is closed (a server that stops half way).
   */
  cutDataAfterBytes?: { path: RegExp | string; bytes: number; mode?: 'abort' | 'truncate' | 'stall' };
  /** RETR of a matching path sends at most this many bytes per second (a slow server or link). */
  slowData?: { path: RegExp | string; bytesPerSecond: number };
  /**
   * RETR of a matching path sends the whole file and closes the data connection, but the final
   * `226` reply never comes on the control connection.
   */
  withholdTransferReply?: RegExp | string;
  /** Every `n`th login (PASS), counted over the server's life, gets `421` and the connection is closed. */
  refuseEveryNthLogin?: number;
  /** Called with every command the server receives (before any fault), e.g. to stop it mid-listing. */
  onCommand?: (directive: string, arg: string | null) => void;
  /** RETR of a matching path is answered with `code` (default 550: the file vanished). */
  failRetr?: { path: RegExp | string; code?: number };
  /** A login (PASS) while this many sessions are logged in gets `421` and the connection is closed. */
  maxLogins?: number;
  /** New connections are accepted but never get the 220 banner (nor any reply). */
  hangAfterConnect?: boolean;
  /** Commands with this directive (e.g. `PASS`) are read and never answered. */
  hangOnCommand?: string;
  /**
   * Every command waits this long before it is handled, as if the server were a round trip away (a far
   * server: ftp-sync in one region, the customer's server in another). ftp-srv handles a connection's
   * commands one after the other, so they queue behind it. Not applied to the banner, nor to the data
   * connections (their connect and transfer stay on loopback).
   */
  commandDelayMs?: number;
  /** LIST, MLSD and NLST wait this long before they are handled (a slow server, a huge directory). */
  listDelayMs?: number;
  /**
   * Commands with this directive (e.g. `DELE`, `RNFR`, `MKD`), on a matching path when `path` is
   * set, are answered with `code` (default 550: a server that refuses) and not carried out.
   */
  refuseCommand?: { directive: string; path?: RegExp | string; code?: number; message?: string };
}

/** One RETR as the server served it: from which byte (REST) and how many bytes it sent. */
export interface RetrRecord {
  path: string;
  start: number;
  bytes: number;
}

export interface FtpServerOptions {
  /** Directory served as `/`. */
  root: string;
  /** user → password; default `{ test: 'secret' }`. */
  users?: Record<string, string>;
  faults?: FtpFaults;
  /** Port to listen on (default: a free one); restarting a stopped server on its port needs this. */
  port?: number;
  /**
   * Offer explicit FTPS (`AUTH TLS`) with this key and certificate (PEM); after `AUTH TLS` the data
   * connections are TLS too. Plain logins stay possible (ftp-srv does not enforce TLS).
   */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** user → subdirectory of `root` served as that user's `/` (default: every user sees `root`). */
  homes?: Record<string, string>;
}

/** One login attempt (PASS), as the server saw it. */
export interface LoginAttempt {
  user: string;
  password: string;
  ok: boolean;
  /** Whether the control connection was TLS when the password was sent. */
  secure: boolean;
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
  /** The sessions logged in right now, each with its user and the commands it sent (for a failure's message). */
  sessions(): { id: string; user?: string; commands: string[] }[];
  /** The most sessions that were logged in at the same time. */
  maxConcurrentLogins(): number;
  /** Per user: the most sessions of that user logged in at the same time. */
  maxConcurrentLoginsByUser(): Record<string, number>;
  /** Logins refused with 421 because of `faults.maxLogins` or `faults.refuseEveryNthLogin`. */
  refusedLogins(): number;
  /** Read on every command: change its fields (or replace it) to inject or clear faults at run time. */
  faults: FtpFaults;
  /** Every RETR so far, in order, with its start offset and the bytes sent (updated as they go). */
  retrs(): RetrRecord[];
  /** Every login attempt so far, in order (tests check whose credentials reached which user). */
  loginAttempts(): LoginAttempt[];
  /**
   * Replaces the TLS key and certificate for later handshakes, data connections of sessions already
   * logged in included (a stand-in for a man in the middle of the data connection).
   */
  setTls(tls: { key: string | Buffer; cert: string | Buffer }): void;
}

/** The ftp-srv internals this harness uses; its bundled typings do not declare them. */
interface Connection {
  id: string;
  commands: {
    parse(message: string): { directive: string; arg: string | null };
    handle(command: unknown): unknown;
  };
  fs?: { currentDirectory(): string };
  secure?: boolean;
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
    private readonly onRetr: (r: RetrRecord) => void = () => {},
  ) {
    super(connection, { root, cwd: '/' });
  }

  override async read(fileName: string, opts: { start?: number } = {}) {
    const { stream, clientPath } = (await super.read(fileName, opts)) as {
      stream: Readable;
      clientPath: string;
    };
    const { cutDataAfterBytes: cut, slowData: slow } = this.faults();
    let out = stream;
    if (slow && matches(slow.path, clientPath)) out = throttle(out, slow.bytesPerSecond);
    if (cut && matches(cut.path, clientPath)) out = cutAfter(out, cut.bytes, cut.mode ?? 'abort');
    const record: RetrRecord = { path: clientPath, start: opts.start ?? 0, bytes: 0 };
    this.onRetr(record);
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        record.bytes += chunk.length;
        cb(null, chunk);
      },
    });
    const source = out;
    source.on('error', (err) => counted.destroy(err));
    counted.on('close', () => source.destroy());
    out = source.pipe(counted);
    // ftp-srv pauses the control socket during RETR and, when the client hangs up the data
    // connection, may wait for the next chunk forever: it would never see the session end. A real
    // server notices at once; so does this one: a data connection closed early fails the RETR.
    const socket = (this.connection as unknown as { connector?: { socket?: Readable } }).connector?.socket;
    socket?.once('close', () => {
      if (!out.readableEnded) out.destroy(new Error('the client closed the data connection'));
    });
    return { stream: out, clientPath };
  }
}

/**
 * Passes the first `bytes` bytes of `source` on, then ends or fails. ftp-srv writes each chunk to
 * the data socket before it asks for the next, and the pause before failing lets the last write
 * reach the socket, so the client does receive exactly `bytes` bytes.
 */
function cutAfter(source: Readable, bytes: number, mode: 'abort' | 'truncate' | 'stall'): Readable {
  async function* take() {
    let sent = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      const part = chunk.subarray(0, bytes - sent);
      sent += part.length;
      if (part.length > 0) yield part;
      if (sent >= bytes) break;
    }
    if (mode === 'stall') await new Promise(() => {});
    if (mode === 'abort') {
      await delay(50);
      throw new Error('data connection cut (injected fault)');
    }
  }
  return Readable.from(take(), { objectMode: false, highWaterMark: 1 });
}

/** Passes `source` on at no more than `bytesPerSecond`, in 16 KiB pieces. */
function throttle(source: Readable, bytesPerSecond: number): Readable {
  async function* take() {
    const started = Date.now();
    let sent = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      for (let i = 0; i < chunk.length; i += 16_384) {
        const part = chunk.subarray(i, i + 16_384);
        sent += part.length;
        const wait = started + (sent / bytesPerSecond) * 1000 - Date.now();
        if (wait > 0) await delay(wait);
        yield part;
      }
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
  const commandsOf = new Map<string, string[]>();
  let maxConcurrent = 0;
  let refused = 0;
  let passes = 0;
  // connection id → user, and per user: sessions logged in now and the most at once.
  const userOf = new Map<string, string>();
  const perUser = new Map<string, { now: number; max: number }>();
  const attempts: LoginAttempt[] = [];
  const retrs: RetrRecord[] = [];

  // ftp-srv adds SIGTERM/SIGINT/SIGQUIT handlers that exit the process; they are removed on stop.
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  const server = new FtpSrv({
    url: `ftp://127.0.0.1:${opts.port ?? 0}`,
    pasv_url: '127.0.0.1',
    // 0..0: every passive listener binds port 0, so the kernel picks a free port (no range to race on).
    pasv_min: 0,
    pasv_max: 0,
    anonymous: false,
    log: silentLog,
    ...(opts.tls && { tls: { key: opts.tls.key, cert: opts.tls.cert } }),
  });
  const added = SIGNALS.flatMap((s) =>
    process.listeners(s).flatMap((l) => (before.get(s)?.has(l) ? [] : [[s, l] as const])),
  );

  server.on('login', ({ connection, username, password }, resolve, reject) => {
    const ok = users.get(username) === password;
    const secure = Boolean((connection as unknown as Connection).secure);
    attempts.push({ user: username, password, ok, secure });
    if (!ok) {
      reject(new Error('Login incorrect'));
      return;
    }
    const id = (connection as unknown as Connection).id;
    loggedIn.add(id);
    maxConcurrent = Math.max(maxConcurrent, loggedIn.size);
    if (!userOf.has(id)) {
      userOf.set(id, username);
      const u = perUser.get(username) ?? { now: 0, max: 0 };
      u.now++;
      u.max = Math.max(u.max, u.now);
      perUser.set(username, u);
    }
    const home = opts.homes?.[username];
    const root = home ? posix.join(opts.root, home) : opts.root;
    resolve({
      fs: new FaultFileSystem(
        connection,
        root,
        () => faults,
        (r) => retrs.push(r),
      ),
    });
  });

  const events = server as unknown as EventEmitter;
  events.on('disconnect', ({ id }: { id: string }) => {
    loggedIn.delete(id);
    commandsOf.delete(id);
    const user = userOf.get(id);
    userOf.delete(id);
    const u = user === undefined ? undefined : perUser.get(user);
    if (u) u.now--;
  });
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
      try {
        faults.onCommand?.(directive, arg);
        const seen = commandsOf.get(connection.id) ?? [];
        commandsOf.set(connection.id, seen);
        seen.push(directive === 'PASS' ? 'PASS ***' : `${directive}${arg ? ` ${arg}` : ''}`);
        if (seen.length > 20) seen.shift();
      } catch {
        // an observer, never a fault
      }
      const respond = () => {
        const injected = injectFault(connection, directive, arg);
        const slowList = faults.listDelayMs && /^(LIST|MLSD|NLST)$/.test(directive) ? faults.listDelayMs : 0;
        return injected ?? (slowList ? delay(slowList).then(() => handle(command)) : handle(command));
      };
      const rtt = faults.commandDelayMs;
      // ftp-srv chains commands with no catch; a failure must not become an unhandled rejection.
      return Promise.resolve(rtt ? delay(rtt).then(respond) : respond()).catch(() => {});
    };
  }

  function injectFault(connection: Connection, directive: string, arg: string | null) {
    if (faults.hangOnCommand === directive) return new Promise<void>(() => {});
    if (directive === 'PASS') passes++;
    const nth = faults.refuseEveryNthLogin;
    if (
      directive === 'PASS' &&
      ((faults.maxLogins !== undefined && loggedIn.size >= faults.maxLogins) || (nth && passes % nth === 0))
    ) {
      refused++;
      return connection.close(421, 'Too many users logged in, try again later.');
    }
    const withhold = faults.withholdTransferReply;
    if (directive === 'RETR' && withhold && connection.fs && arg) {
      if (matches(withhold, posix.resolve(connection.fs.currentDirectory(), arg))) {
        // ftp-srv sends 226 and only then closes the data connection: swallow that one reply.
        const reply = connection.reply.bind(connection);
        connection.reply = (code, message) => {
          if (code !== 226) return reply(code, message);
          connection.reply = reply;
          return Promise.resolve();
        };
      }
    }
    const refuse = faults.refuseCommand;
    if (refuse && directive === refuse.directive) {
      const path = connection.fs && arg ? posix.resolve(connection.fs.currentDirectory(), arg) : arg;
      if (!refuse.path || (path && matches(refuse.path, path))) {
        return connection.reply(refuse.code ?? 550, refuse.message ?? 'Permission denied (injected fault)');
      }
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
    sessions: () =>
      [...loggedIn].map((id) => ({ id, user: userOf.get(id), commands: commandsOf.get(id) ?? [] })),
    maxConcurrentLogins: () => maxConcurrent,
    maxConcurrentLoginsByUser: () => Object.fromEntries([...perUser].map(([user, u]) => [user, u.max])),
    refusedLogins: () => refused,
    loginAttempts: () => [...attempts],
    retrs: () => retrs.map((r) => ({ ...r })),
    setTls(tls) {
      (server as unknown as { options: { tls: unknown } }).options.tls = { key: tls.key, cert: tls.cert };
    },
    stop() {
      stopping ??= (async () => {
        for (const [signal, listener] of added) process.removeListener(signal, listener);
        await server.close();
      })();
      return stopping;
    },
  };
}
