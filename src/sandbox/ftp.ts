/**
 * An in-process FTP server (ftp-srv) on a free 127.0.0.1 port: one user per tenant, each locked into
 * its own home directory. Passive data connections on 127.0.0.1, kernel-chosen ports. Plain FTP:
 * it only ever listens on loopback.
 */
import { FtpSrv } from 'ftp-srv';

export interface FtpUser {
  password: string;
  /** Directory served to this user as `/`. */
  home: string;
}

export interface SandboxFtp {
  host: '127.0.0.1';
  port: number;
  stop(): Promise<void>;
}

/** ftp-srv logs through bunyan by default; the sandbox keeps quiet. */
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

export async function startFtp(opts: { users: Record<string, FtpUser> }): Promise<SandboxFtp> {
  const users = new Map(Object.entries(opts.users));
  // ftp-srv's constructor adds SIGTERM/SIGINT/SIGQUIT handlers that call process.exit(): they would
  // cut the demo's own shutdown short, so they are removed at once.
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  const server = new FtpSrv({
    url: 'ftp://127.0.0.1:0',
    pasv_url: '127.0.0.1',
    // 0..0: every passive listener binds port 0, so the kernel picks a free port.
    pasv_min: 0,
    pasv_max: 0,
    anonymous: false,
    greeting: 'ftp-sync demo sandbox',
    log: silentLog,
  });
  for (const s of SIGNALS) {
    for (const l of process.listeners(s)) if (!before.get(s)?.has(l)) process.removeListener(s, l);
  }

  server.on('login', ({ username, password }, resolve, reject) => {
    const user = users.get(username);
    if (!user || user.password !== password) return reject(new Error('Login incorrect'));
    resolve({ root: user.home, cwd: '/' });
  });
  // Clients that vanish mid-transfer are reported as events; nothing to do about them here.
  server.on('client-error', () => {});
  (server as unknown as NodeJS.EventEmitter).on('server-error', () => {});

  await server.listen();
  const port = (server as unknown as { server: { address(): { port: number } } }).server.address().port;

  let stopping: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    stop() {
      stopping ??= Promise.resolve(server.close()).then(() => {});
      return stopping;
    },
  };
}
