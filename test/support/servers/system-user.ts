/**
 * vsftpd has no user database of its own: a password login is a system account checked through PAM
 * (Debian's /etc/pam.d/vsftpd: pam_unix, not in /etc/ftpusers, a shell listed in /etc/shells).
 * Tests running as root create one such account once; it has no home directory of its own (`/`,
 * since vsftpd changes into the home before `local_root`) and exists only for these tests.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SYSTEM_USER = 'ftpsync-interop';
export const SYSTEM_PASSWORD = 'interop-Pa55-4b7e';

export const isRoot = () => process.getuid?.() === 0;

/** The account's `/etc/passwd` line, if it exists. */
function passwdEntry(user: string): string | undefined {
  return readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
}

/** True when the account's password already is `password` (checked against /etc/shadow). */
async function hasPassword(user: string, password: string): Promise<boolean> {
  const hash = readFileSync('/etc/shadow', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`))
    ?.split(':')[1];
  const m = hash && /^\$6\$([^$]+)\$/.exec(hash);
  if (!m) return false;
  const stdout = await withInput('openssl', ['passwd', '-6', '-salt', m[1]!, '-stdin'], password);
  return stdout.trim() === hash;
}

/**
 * Creates `SYSTEM_USER` (uid chosen by useradd, shell /bin/sh, home /) with `SYSTEM_PASSWORD`, unless
 * it is there already. Test files run in parallel: /etc/passwd lock contention is retried.
 */
export async function ensureSystemUser(): Promise<{ user: string; password: string }> {
  if (!isRoot()) throw new Error('creating the vsftpd test account needs root');
  for (let attempt = 1; ; attempt++) {
    try {
      if (!passwdEntry(SYSTEM_USER)) {
        await run('useradd', [
          '--system',
          '--no-create-home',
          '--home-dir',
          '/',
          '--shell',
          '/bin/sh',
          SYSTEM_USER,
        ]);
      }
      if (!(await hasPassword(SYSTEM_USER, SYSTEM_PASSWORD))) {
        await withInput('chpasswd', [], `${SYSTEM_USER}:${SYSTEM_PASSWORD}\n`);
      }
      return { user: SYSTEM_USER, password: SYSTEM_PASSWORD };
    } catch (err) {
      if (attempt >= 20) throw err;
      await delay(100 + Math.random() * 200); // another test file holds the lock, or created it just now
    }
  }
}

/** Runs a command with `input` on its standard input; resolves with its standard output. */
export function withInput(command: string, args: string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, (err, stdout, stderr) =>
      err ? reject(new Error(`${command} failed: ${stderr.trim() || err.message}`)) : resolve(stdout),
    );
    child.stdin?.end(input);
  });
}
