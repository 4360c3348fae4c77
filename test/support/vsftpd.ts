import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, readFileSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { tempDir } from './fs.js';
import { freePort } from './ports.js';
import { kill, stopTree } from './proc.js';

/*
 * vsftpd 3.0.3 (Debian 12), as seen by basic-ftp:
 * - LIST is unix `ls -l` style with numeric owner/group and UTC times (use_localtime=NO):
 *   `-rw-r--r--    1 0        0               6 Nov 23 18:48 a.txt` ("MMM DD  YYYY" when older than
 *   six months): no seconds, and no year for recent files. Dot files are hidden.
 * - FEAT: EPRT EPSV MDTM PASV REST STREAM SIZE TVFS. No MLSD/MLST, no UTF8 line (but `OPTS UTF8 ON`
 *   answers 200 "Always in UTF8 mode").
 * - Anonymous sessions run as the `ftp` user chrooted into anon_root. The root must be readable by
 *   `ftp` (0755: with 0700 the listing is silently empty) and must not be writable by it (0777 gets
 *   `500 OOPS: vsftpd: refusing to run with writable root inside chroot()` at login). Files must be
 *   world-readable (0600 gives `550 Failed to open file.` on RETR although LIST shows them).
 *   writeFileDeep() in ./fs.ts creates 0755 directories and 0644 files.
 */

export const VSFTPD = '/usr/sbin/vsftpd';

/** True when Debian's vsftpd binary is installed (`apt-get install vsftpd`). */
export function hasVsftpd(): boolean {
  try {
    accessSync(VSFTPD, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface VsftpdOptions {
  /** Served read-only to anonymous users as `/`; chmod'ed to 0755 (see above). */
  root: string;
  /** vsftpd's `max_per_ip`: the connection beyond this many from 127.0.0.1 gets a 421 banner. */
  maxPerIp?: number;
  /**
   * Run inside this network namespace (`ip netns exec`), listening on `listenAddress` there
   * (test/support/slow-link.ts makes both). Default: the host's 127.0.0.1.
   */
  netns?: string;
  listenAddress?: string;
  /**
   * What PASV answers and the one passive port (a relay in front of the server, tcp-proxy.ts, forwards
   * that port). Default: `listenAddress` and a port the kernel picks.
   */
  pasvAddress?: string;
  pasvPort?: number;
  /** vsftpd's `idle_session_timeout` (seconds without a command on the control connection; 300). */
  idleSessionTimeout?: number;
  /** vsftpd's `data_connection_timeout` (seconds a data transfer may stall; 300). */
  dataConnectionTimeout?: number;
}

export interface VsftpdServer {
  host: string;
  port: number;
  /** Anonymous login; any password is accepted. */
  user: string;
  password: string;
  stop(): Promise<void>;
}

/** Starts vsftpd in the foreground on a free 127.0.0.1 port, anonymous and read-only. */
export async function startVsftpd(opts: VsftpdOptions): Promise<VsftpdServer> {
  if (!hasVsftpd()) throw new Error(`${VSFTPD} is not installed (apt-get install vsftpd)`);
  await chmod(opts.root, 0o755);
  const dir = await tempDir('vsftpd');
  // secure_chroot_dir: an empty directory owned by root and not writable by anyone else (mkdtemp: 0700).
  const empty = await tempDir('vsftpd-empty');
  const cleanup = async () => {
    await dir.cleanup();
    await empty.cleanup();
  };

  for (let attempt = 1; ; attempt++) {
    // Inside a namespace of its own nothing else listens: any port does.
    const port = opts.netns ? 2100 + attempt : await freePort();
    const conf = join(dir.path, 'vsftpd.conf');
    await writeFile(conf, config({ ...opts, port, emptyDir: empty.path }));
    try {
      const host = opts.listenAddress ?? '127.0.0.1';
      const proc = await launch(conf, host, port, opts.netns);
      let stopping: Promise<void> | undefined;
      return {
        host,
        port,
        user: 'anonymous',
        password: 'anonymous@example.com',
        stop() {
          stopping ??= stopTree(proc).then(cleanup);
          return stopping;
        },
      };
    } catch (err) {
      // Most likely the port was taken between freePort() and vsftpd's bind.
      if (attempt >= 3) {
        await cleanup();
        throw err;
      }
    }
  }
}

function config(o: VsftpdOptions & { port: number; emptyDir: string }): string {
  const lines = [
    'listen=YES',
    'listen_ipv6=NO',
    `listen_address=${o.listenAddress ?? '127.0.0.1'}`,
    `listen_port=${o.port}`,
    'background=NO',
    'anonymous_enable=YES',
    `ftp_username=${ftpUser()}`,
    `anon_root=${o.root}`,
    'local_enable=NO',
    'write_enable=NO',
    'pasv_enable=YES',
    `pasv_address=${o.pasvAddress ?? o.listenAddress ?? '127.0.0.1'}`,
    // 0/0 (vsftpd's default) lets the kernel pick each passive port: nothing to collide with.
    `pasv_min_port=${o.pasvPort ?? 0}`,
    `pasv_max_port=${o.pasvPort ?? 0}`,
    'connect_from_port_20=NO',
    'seccomp_sandbox=NO',
    `secure_chroot_dir=${o.emptyDir}`,
    'xferlog_enable=NO',
    'use_localtime=NO',
    'dirmessage_enable=NO',
  ];
  if (o.maxPerIp !== undefined) lines.push(`max_per_ip=${o.maxPerIp}`);
  if (o.idleSessionTimeout !== undefined) lines.push(`idle_session_timeout=${o.idleSessionTimeout}`);
  if (o.dataConnectionTimeout !== undefined) lines.push(`data_connection_timeout=${o.dataConnectionTimeout}`);
  return `${lines.join('\n')}\n`;
}

/** Anonymous sessions run as `ftp` (created by the Debian package); `nobody` when it is missing. */
function ftpUser(): string {
  try {
    return /^ftp:/m.test(readFileSync('/etc/passwd', 'utf8')) ? 'ftp' : 'nobody';
  } catch {
    return 'nobody';
  }
}

async function launch(conf: string, host: string, port: number, netns?: string): Promise<ChildProcess> {
  // `ip netns exec` execs vsftpd in place: the child's pid is vsftpd's, stopTree() works as usual.
  const [cmd, args] = netns ? ['ip', ['netns', 'exec', netns, VSFTPD, conf]] : [VSFTPD, [conf]];
  const child = spawn(cmd as string, args as string[], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`vsftpd exited during start (code ${code}): ${output.trim()}`);
  });
  try {
    await Promise.race([waitForBanner(host, port), exited]);
    return child;
  } catch (err) {
    await kill(child);
    throw err;
  } finally {
    exited.catch(() => {});
  }
}

/**
 * Resolves once a connection to `port` got vsftpd's `220` banner and its session ended. The pause
 * after that lets vsftpd's parent reap the session, which still counts towards `max_per_ip` until then.
 */
async function waitForBanner(host: string, port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const line = await firstLine(host, port).catch(() => undefined);
    if (line?.startsWith('220')) return void (await delay(50));
    if (line !== undefined) throw new Error(`vsftpd answered: ${line}`);
    if (Date.now() > deadline) throw new Error(`vsftpd on port ${port}: no 220 banner`);
    await delay(50);
  }
}

/** The first line the server sends; resolves after the connection closed (QUIT is sent). */
function firstLine(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let text = '';
    let line: string | undefined;
    socket.setTimeout(2000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (b) => {
      text += b.toString();
      const end = text.indexOf('\r\n');
      if (line === undefined && end >= 0) {
        line = text.slice(0, end);
        socket.end('QUIT\r\n');
      }
    });
    socket.on('error', reject);
    socket.on('close', () =>
      line === undefined ? reject(new Error('closed before banner')) : resolve(line),
    );
  });
}
