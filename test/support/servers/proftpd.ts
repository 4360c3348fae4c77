/**
 * ProFTPD 1.3.8 from Debian's packages proftpd-core and proftpd-mod-crypto (mod_tls), unpacked
 * (./debs.ts) with their libraries installed, run with a configuration file of its own.
 * Facts (docs/interop.md has the table):
 * - MLSD with UTC `modify=` facts; LIST in UTC too (`TimesGMT on`, the default) whatever the TZ;
 *   with `TimesGMT off` LIST shows the process's local time (and MLSD stays UTC).
 * - Virtual users from an `AuthUserFile` (passwd format, SHA-512 crypt from `openssl passwd -6`).
 * - FTPS: explicit, or implicit with `TLSOptions UseImplicitSSL`. Data connections must resume the
 *   control connection's TLS session unless `TLSOptions NoSessionReuseRequired`: basic-ftp does, so
 *   the default stays.
 * - `MaxClientsPerUser N` answers the login beyond it with **530** `Sorry, the maximum number of
 *   clients (N) for this user are already connected.` — the code of a wrong password.
 * - `ListOptions "" maxfiles N` caps LIST (not MLSD).
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../fs.js';
import { freePort } from '../ports.js';
import { debPaths } from './debs.js';
import { spawnServer } from './process.js';
import { withInput } from './system-user.js';
import { type FtpServerUnderTest, passiveRange, type ServerOptions, secureOf } from './types.js';

const USER = 'bob';
const PASSWORD = 'pro-Pa55-2c8a';

export async function startProftpd(opts: ServerOptions): Promise<FtpServerUnderTest> {
  if (!opts.debRoot) throw new Error('proftpd: debRoot (unpackDebs) is required');
  if (opts.mode !== 'plain' && !opts.pki) throw new Error('proftpd: FTPS needs a pki');
  const bin = debPaths(opts.debRoot);
  await chmod(opts.root, 0o755);
  const dir = await tempDir('proftpd-conf');
  const p = (name: string) => join(dir.path, name);
  const hash = (await withInput('openssl', ['passwd', '-6', '-stdin'], PASSWORD)).trim();
  await writeFile(p('passwd'), `${USER}:${hash}:65534:65534::${opts.root}:/bin/sh\n`, { mode: 0o600 });
  await writeFile(p('group'), 'nogroup:x:65534:\n', { mode: 0o600 });
  if (opts.pki) {
    await writeFile(p('server.pem'), opts.pki.server.cert);
    await writeFile(p('server.key'), opts.pki.server.key, { mode: 0o600 });
  }
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const conf = p('proftpd.conf');
    await writeFile(conf, config(opts, port, dir.path, bin.proftpdModules));
    try {
      const proc = await spawnServer({
        name: 'proftpd',
        command: bin.proftpd,
        args: ['--nodaemon', '--config', conf],
        port,
        implicitTls: opts.mode === 'implicit',
        env: opts.tz ? { TZ: opts.tz } : {},
      });
      let stopping: Promise<void> | undefined;
      return {
        kind: 'proftpd',
        mode: opts.mode,
        host: '127.0.0.1',
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

function config(o: ServerOptions, port: number, dir: string, modules: string): string {
  const [lo, hi] = passiveRange();
  const lines = [
    'ServerType standalone',
    'ServerName "ftp-sync interop"',
    'DefaultAddress 127.0.0.1',
    `Port ${port}`,
    'UseIPv6 off',
    'User nobody',
    'Group nogroup',
    `PidFile ${join(dir, 'proftpd.pid')}`,
    `ScoreboardFile ${join(dir, 'proftpd.scoreboard')}`,
    'DelayTable none',
    'WtmpLog off',
    'UseReverseDNS off',
    'ControlsEngine off',
    `SystemLog ${join(dir, 'system.log')}`,
    'TransferLog none',
    'AuthOrder mod_auth_file.c',
    `AuthUserFile ${join(dir, 'passwd')}`,
    `AuthGroupFile ${join(dir, 'group')}`,
    'RequireValidShell off',
    'DefaultRoot ~',
    `PassivePorts ${lo} ${hi}`,
    `TimesGMT ${o.tz ? 'off' : 'on'}`,
  ];
  if (o.maxLogins !== undefined) lines.push(`MaxClientsPerUser ${o.maxLogins}`);
  if (o.maxListing !== undefined) lines.push(`ListOptions "" maxfiles ${o.maxListing}`);
  if (o.mode !== 'plain') {
    lines.push(
      `ModulePath ${modules}`,
      'LoadModule mod_tls.c',
      'TLSEngine on',
      'TLSRequired on',
      `TLSLog ${join(dir, 'tls.log')}`,
      'TLSProtocol TLSv1.2 TLSv1.3',
      `TLSECCertificateFile ${join(dir, 'server.pem')}`,
      `TLSECCertificateKeyFile ${join(dir, 'server.key')}`,
      'TLSVerifyClient off',
    );
    if (o.mode === 'implicit') lines.push('TLSOptions UseImplicitSSL');
  }
  return `${lines.join('\n')}\n`;
}
