/**
 * OpenSSH's sshd (Debian's `openssh-server`) in the foreground on a free 127.0.0.1 port, serving only
 * SFTP (`internal-sftp`) to one throwaway system user, with a host key made for the run.
 *
 * Why it needs root and a real user: sshd checks a password against /etc/shadow and runs the session
 * as the user it logs in. Each server makes its own user (`ftpsync-t<pid>-<hex>`, no home, shell
 * nologin, random password) and deletes it on `stop()`; users left by a killed test run (their pid no
 * longer exists) are deleted by the next start.
 *
 * No chroot: sshd refuses a ChrootDirectory below a world-writable directory such as /tmp, so SFTP paths
 * are the real absolute paths (`server.root` and below). The served tree must be readable by the user
 * (writeFileDeep in ./fs.ts makes 0755 directories and 0644 files).
 *
 * Seen with OpenSSH 9.2 (Debian 12): READDIR answers lstat attributes (a symbolic link is a link);
 * mtime is whole seconds; OpenSSH offers posix-rename@openssh.com and limits@openssh.com (reads up to
 * 255 KiB). The privilege-separation directory /run/sshd must exist (the package creates it only when
 * its service starts), so a start creates it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { tempDir } from './fs.js';
import { freePort } from './ports.js';
import { descendants, exists, kill } from './proc.js';

const run = promisify(execFile);

export const SSHD = '/usr/sbin/sshd';
const USER_PREFIX = 'ftpsync-t';

/** True when sshd is installed (`apt-get install openssh-server`) and this process can run it (root). */
export function hasSshd(): boolean {
  try {
    accessSync(SSHD, constants.X_OK);
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

export interface SshdOptions {
  /** Served directory; its absolute path is the SFTP path. Default: a fresh temp directory. */
  root?: string;
}

export interface SshdServer {
  host: '127.0.0.1';
  port: number;
  /** The throwaway user; logs in with `password` or the key in `privateKeyFile`. */
  user: string;
  password: string;
  /** Unencrypted ed25519 key (OpenSSH format) in the user's authorized keys. */
  privateKeyFile: string;
  /** The same key encrypted with `passphrase`. */
  encryptedKeyFile: string;
  passphrase: string;
  /** Host key fingerprint exactly as `ssh-keygen -lf` prints it (`SHA256:…`). */
  hostKeyFingerprint: string;
  /** The host's public key, one line as in a `.pub` file (`ssh-ed25519 AAAA…`). */
  hostPublicKey: string;
  /** Served directory (absolute path, as SFTP paths name it). */
  root: string;
  /** Makes `dir` (below root) writable by the SFTP user, for rename and remove. */
  giveToUser(dir: string): Promise<void>;
  /** Kills every session process at once: all connections are cut, the listener stays. */
  cutSessions(): Promise<void>;
  /** Stops (SIGSTOP) every session process: connections stay open but nothing is answered. */
  freezeSessions(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts sshd; throws when sshd is missing or this is not root (check `hasSshd()` first). */
export async function startSshd(opts: SshdOptions = {}): Promise<SshdServer> {
  if (!hasSshd()) throw new Error(`${SSHD} is not installed (apt-get install openssh-server) or not root`);
  const dir = await tempDir('sshd');
  const served = opts.root ? undefined : await tempDir('sshd-root');
  const root = opts.root ?? served!.path;
  await chmod(root, 0o755);
  // sshd reads authorized_keys as the user: the directory must be traversable, the file readable.
  await chmod(dir.path, 0o711);
  const file = (name: string) => join(dir.path, name);

  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  stopOrphanedListeners();
  await removeStaleUsers();
  const user = `${USER_PREFIX}${process.pid}-${randomBytes(2).toString('hex')}`;
  const password = randomBytes(18).toString('base64url');
  const passphrase = randomBytes(12).toString('base64url');
  let userMade = false;
  const cleanup = async () => {
    if (userMade) await deleteUser(user);
    await dir.cleanup();
    await served?.cleanup();
  };

  try {
    await keygen(file('host_ed25519'), '');
    await keygen(file('client_ed25519'), '');
    await keygen(file('client_encrypted'), passphrase);
    await writeFile(
      file('authorized_keys'),
      [
        await readFile(file('client_ed25519.pub'), 'utf8'),
        await readFile(file('client_encrypted.pub'), 'utf8'),
      ].join(''),
      { mode: 0o644 },
    );
    await chmod(file('authorized_keys'), 0o644);
    const { stdout } = await run('ssh-keygen', ['-lf', file('host_ed25519.pub')]);
    const hostKeyFingerprint = stdout.split(/\s+/)[1] ?? '';
    const hostPublicKey = (await readFile(file('host_ed25519.pub'), 'utf8')).trim();
    if (!hostKeyFingerprint.startsWith('SHA256:')) throw new Error(`ssh-keygen -lf printed ${stdout}`);

    await makeUser(user, root);
    userMade = true;
    await setPassword(user, password);

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const conf = file('sshd_config');
      await writeFile(conf, config({ port, dir: dir.path, user }));
      try {
        const proc = await launch(conf, port);
        let stopping: Promise<void> | undefined;
        const sessions = (signal: NodeJS.Signals) => signalSessions(proc, signal);
        return {
          host: '127.0.0.1',
          port,
          user,
          password,
          privateKeyFile: file('client_ed25519'),
          encryptedKeyFile: file('client_encrypted'),
          passphrase,
          hostKeyFingerprint,
          hostPublicKey,
          root,
          async giveToUser(path) {
            await run('chown', ['-R', `${user}:`, path]);
          },
          cutSessions: () => sessions('SIGKILL'),
          freezeSessions: () => sessions('SIGSTOP'),
          stop() {
            stopping ??= (async () => {
              await sessions('SIGKILL');
              await kill(proc);
            })().finally(cleanup);
            return stopping;
          },
        };
      } catch (err) {
        // Most likely the port was taken between freePort() and sshd's bind.
        if (attempt >= 3) throw err;
      }
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function config(o: { port: number; dir: string; user: string }): string {
  return `${[
    `ListenAddress 127.0.0.1:${o.port}`,
    `HostKey ${join(o.dir, 'host_ed25519')}`,
    'PidFile none',
    `AllowUsers ${o.user}`,
    'PermitRootLogin no',
    'UsePAM no',
    'PasswordAuthentication yes',
    'PubkeyAuthentication yes',
    'KbdInteractiveAuthentication no',
    'PermitEmptyPasswords no',
    `AuthorizedKeysFile ${join(o.dir, 'authorized_keys')}`,
    // The key files live in a root-owned temp directory, not the user's home.
    'StrictModes no',
    'Subsystem sftp internal-sftp',
    'ForceCommand internal-sftp',
    'AllowTcpForwarding no',
    'AllowAgentForwarding no',
    'X11Forwarding no',
    'PermitTTY no',
    'UseDNS no',
    // Tests open many connections at once and fail logins on purpose.
    'MaxStartups 100',
    'MaxAuthTries 10',
    'LoginGraceTime 30',
    `LogLevel ${process.env.FTPSYNC_SSHD_LOGLEVEL ?? 'ERROR'}`,
  ].join('\n')}\n`;
}

async function keygen(path: string, passphrase: string): Promise<void> {
  // -a 1: one KDF round for the encrypted key (the default 16 makes every login with it take seconds).
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-a', '1', '-N', passphrase, '-C', '', '-f', path]);
}

/** useradd and userdel fail while another process holds /etc/passwd's lock: try again for a while. */
async function withPasswdLock<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const text = `${(err as { stderr?: string }).stderr ?? ''} ${(err as Error).message}`;
      if (attempt >= 50 || !/lock|try again/i.test(text)) throw err;
      await delay(50 + Math.random() * 100);
    }
  }
}

async function makeUser(user: string, home: string): Promise<void> {
  await withPasswdLock(() =>
    run('useradd', [
      '--system',
      '--no-create-home',
      '--home-dir',
      home,
      '--shell',
      '/usr/sbin/nologin',
      '--no-user-group',
      '--gid',
      'nogroup',
      user,
    ]),
  );
}

async function setPassword(user: string, password: string): Promise<void> {
  await withPasswdLock(
    () =>
      new Promise<void>((resolve, reject) => {
        const child = execFile('chpasswd', (err, _out, stderr) =>
          err ? reject(Object.assign(err, { stderr })) : resolve(),
        );
        child.stdin?.end(`${user}:${password}\n`);
      }),
  );
}

async function deleteUser(user: string): Promise<void> {
  await withPasswdLock(() => run('userdel', [user])).catch(() => {});
}

/**
 * Kills listeners of this harness whose test process died before `stop()` (the listener then belongs
 * to init): recognised by their config file in one of our temp directories.
 */
function stopOrphanedListeners(): void {
  // sshd rewrites its command line: "sshd: /usr/sbin/sshd -D -e -f <dir>/sshd_config [listener] …".
  const ours = /^sshd: \S*sshd -D -e -f \S*\/ftp-sync-sshd-[^/\s]+\/sshd_config /;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === 1 && ours.test(cmd)) process.kill(Number(entry), 'SIGKILL');
    } catch {
      // exited while we looked, or not ours to signal
    }
  }
}

/** Deletes throwaway users whose test process is gone (a run that was killed before its cleanup). */
async function removeStaleUsers(): Promise<void> {
  let passwd = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return;
  }
  const pattern = new RegExp(`^(${USER_PREFIX}(\\d+)-[0-9a-f]{4}):`, 'gm');
  for (const m of passwd.matchAll(pattern)) {
    if (!exists(Number(m[2]))) await deleteUser(m[1]!);
  }
}

async function launch(conf: string, port: number): Promise<ChildProcess> {
  // -D: foreground; -e: log to stderr. sshd re-executes itself, so it needs its absolute path.
  const child = spawn(SSHD, ['-D', '-e', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`sshd exited during start (code ${code}): ${output.trim()}`);
  });
  try {
    await Promise.race([waitForBanner(port), exited]);
    return child;
  } catch (err) {
    await kill(child);
    throw err;
  } finally {
    exited.catch(() => {});
  }
}

/** Resolves once a connection to `port` got an `SSH-2.0-` identification line. */
async function waitForBanner(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const line = await firstLine(port).catch(() => undefined);
    if (line?.startsWith('SSH-2.0-')) return;
    if (line !== undefined) throw new Error(`sshd answered: ${line}`);
    if (Date.now() > deadline) throw new Error(`sshd on port ${port}: no SSH banner`);
    await delay(50);
  }
}

function firstLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setTimeout(2000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (b) => {
      text += b.toString('latin1');
      const end = text.indexOf('\n');
      if (end >= 0) {
        socket.destroy();
        resolve(text.slice(0, end).trim());
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed before banner')));
  });
}

/**
 * Sends `signal` to every process below sshd's listener (the sessions), children first. SIGKILL waits
 * until they are gone: the listener reaps the session leaders; their own children are left to init
 * (sshd's monitor does not wait for them), so a zombie counts as gone.
 */
async function signalSessions(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  const pids = child.pid === undefined ? [] : descendants(child.pid).reverse();
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
  if (signal !== 'SIGKILL') return;
  const deadline = Date.now() + 2000;
  while (pids.some(running) && Date.now() < deadline) await delay(10);
}

/** True while `pid` exists and is not a zombie. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
