/**
 * pure-ftpd 1.0.50 from Debian's package, unpacked (./debs.ts) and run with command-line flags only.
 * Facts (docs/interop.md has the table):
 * - MLSD with exact UTC `modify=` facts whatever the TZ; LIST shows the process's local time.
 * - Virtual users from a puredb file made with `pure-pw` (mapped to uid/gid 65534 here).
 * - FTPS: `-Y 3` refuses cleartext sessions (and answers a plain login with `421 Sorry, cleartext
 *   sessions and weak ciphers are not accepted`); Debian's build has no implicit TLS.
 * - `-L files:depth` caps a listing: the reply ends `226 Output truncated to N matches` and the rest of
 *   the directory is simply not sent (MLSD counts its `.` entry).
 * - `-y users:anon` limits sessions per user: `421 I can't accept more than N connections as the same
 *   user` after PASS.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../fs.js';
import { freePort } from '../ports.js';
import { debPaths } from './debs.js';
import { spawnServer } from './process.js';
import { withInput } from './system-user.js';
import { type FtpServerUnderTest, passiveRange, type ServerOptions, secureOf } from './types.js';

const USER = 'alice';
const PASSWORD = 'pure-Pa55-91d3';
/** nobody/nogroup: the files are world-readable, and pure-ftpd refuses low uids. */
const UID = '65534';

export async function startPureFtpd(opts: ServerOptions): Promise<FtpServerUnderTest> {
  if (!opts.debRoot) throw new Error('pure-ftpd: debRoot (unpackDebs) is required');
  if (opts.mode === 'implicit') throw new Error("Debian's pure-ftpd has no implicit TLS");
  if (opts.mode !== 'plain' && !opts.pki) throw new Error('pure-ftpd: FTPS needs a pki');
  const bin = debPaths(opts.debRoot);
  await chmod(opts.root, 0o755);
  const dir = await tempDir('pure-ftpd-conf');
  const passwd = join(dir.path, 'pureftpd.passwd');
  const pdb = join(dir.path, 'pureftpd.pdb');
  // `pure-pw useradd` hashes with argon2id at 255 passes: about 8 s per login on a 2-core machine.
  // A SHA-512 crypt line (which puredb also takes) keeps logins fast; `pure-pw mkdb` indexes it.
  const hash = (await withInput('openssl', ['passwd', '-6', '-stdin'], PASSWORD)).trim();
  await writeFile(passwd, `${USER}:${hash}:${UID}:${UID}::${opts.root}/./::::::::::::\n`, { mode: 0o600 });
  await withInput(bin.purePw, ['mkdb', pdb, '-f', passwd], '');
  const certFile = join(dir.path, 'server.pem');
  if (opts.pki) await writeFile(certFile, opts.pki.server.key + opts.pki.server.cert, { mode: 0o600 });

  for (let attempt = 1; ; attempt++) {
    // In a namespace of its own nothing else listens: any port is free there.
    const host = opts.netns ? (opts.listenAddress ?? '127.0.0.1') : '127.0.0.1';
    const port = opts.netns ? 2100 + attempt : await freePort();
    const [lo, hi] = passiveRange();
    const args = [
      `--bind=${host},${port}`,
      '--ipv4only',
      '--noanonymous',
      '--chrooteveryone',
      '--dontresolve',
      `--login=puredb:${pdb}`,
      `--passiveportrange=${lo}:${hi}`,
      `--forcepassiveip=${host}`,
      `--tls=${opts.mode === 'plain' ? 0 : 3}`,
    ];
    if (opts.mode !== 'plain') args.push(`--certfile=${certFile}`);
    if (opts.maxListing !== undefined) args.push(`--limitrecursion=${opts.maxListing}:8`);
    if (opts.maxLogins !== undefined) args.push(`--peruserlimits=${opts.maxLogins}:0`);
    try {
      const proc = await spawnServer({
        name: 'pure-ftpd',
        ...(opts.netns
          ? { command: 'ip', args: ['netns', 'exec', opts.netns, bin.pureFtpd, ...args], host }
          : { command: bin.pureFtpd, args }),
        port,
        env: opts.tz ? { TZ: opts.tz } : {},
      });
      let stopping: Promise<void> | undefined;
      return {
        kind: 'pure-ftpd',
        mode: opts.mode,
        host,
        port,
        user: USER,
        password: PASSWORD,
        secure: secureOf(opts.mode),
        caFile: opts.mode === 'plain' ? undefined : opts.pki?.caFile,
        process: proc,
        stop() {
          stopping ??= proc.stop().then(dir.cleanup);
          return stopping;
        },
      };
    } catch (err) {
      if (attempt >= 3) {
        await dir.cleanup();
        throw err;
      }
    }
  }
}
