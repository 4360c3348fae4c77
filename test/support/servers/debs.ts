/**
 * Debian's FTP server packages conflict with each other (each provides `ftp-server`), so only one
 * can be installed: vsftpd is (by .ci/run). pure-ftpd and proftpd are fetched with
 * `apt-get download` and unpacked with `dpkg -x` into a folder of the test run, and run from there.
 * Their shared libraries must be installed (.ci/run does that; `ldd` below names what is missing).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The packages unpacked for the interop matrix (proftpd's mod_tls is in proftpd-mod-crypto). */
export const UNPACKED_PACKAGES = ['pure-ftpd', 'proftpd-core', 'proftpd-mod-crypto'];

/** Paths inside an unpacked tree. */
export const debPaths = (root: string) => ({
  pureFtpd: join(root, 'usr/sbin/pure-ftpd'),
  purePw: join(root, 'usr/bin/pure-pw'),
  proftpd: join(root, 'usr/sbin/proftpd'),
  proftpdModules: join(root, 'usr/lib/proftpd'),
});

/**
 * Downloads `packages` into `dir/debs` and unpacks them into `dir/root`; returns `dir/root`.
 * Throws with what to do when apt has no package lists or a library is missing.
 */
export async function unpackDebs(dir: string, packages = UNPACKED_PACKAGES): Promise<string> {
  const debs = join(dir, 'debs');
  const root = join(dir, 'root');
  await mkdir(debs, { recursive: true });
  await mkdir(root, { recursive: true });
  // apt-get download drops root to the `_apt` user, which must be able to write here.
  await chmod(dir, 0o755);
  await chmod(debs, 0o777);
  try {
    await run('apt-get', ['download', '-q', ...packages], { cwd: debs, timeout: 120_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `apt-get download ${packages.join(' ')} failed (run \`apt-get update\` first?): ${e.stderr?.trim() || e.message}`,
    );
  }
  for (const file of (await readdir(debs)).filter((f) => f.endsWith('.deb'))) {
    await run('dpkg', ['-x', join(debs, file), root]);
  }
  const p = debPaths(root);
  const missing = new Set<string>();
  for (const bin of [p.pureFtpd, p.proftpd, join(p.proftpdModules, 'mod_tls.so')]) {
    const { stdout } = await run('ldd', [bin]);
    for (const m of stdout.matchAll(/^\s*(\S+) => not found/gm)) missing.add(m[1]!);
  }
  if (missing.size) {
    throw new Error(
      `libraries missing for the unpacked FTP servers: ${[...missing].join(', ')} ` +
        '(install them as .ci/run does: apt-get install libsodium23 libhiredis0.14 libmemcached11 ' +
        'libmemcachedutil2 libpcre2-posix3)',
    );
  }
  return root;
}
