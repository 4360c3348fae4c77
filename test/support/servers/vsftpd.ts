/**
 * Debian's vsftpd (installed with apt-get) with a password login, FTPS and limits; the older
 * ../vsftpd.ts starts it anonymous and plain. Facts (docs/interop.md has the table):
 * - LIST only (no MLSD/MLST in FEAT); `LIST -a` shows `.` and `..`; times are UTC unless
 *   `use_localtime=YES`, then the process's TZ, which it reads before its chroot.
 * - A password login is a system account through PAM: see ./system-user.ts.
 * - FTPS: `require_ssl_reuse=YES` is the default (data connections must resume the control
 *   connection's TLS session): basic-ftp does, so it stays on here.
 * - `max_per_ip`: the connection beyond it gets `421 There are too many connections from your
 *   internet address.` as its banner — in implicit mode in plain text before any TLS handshake, which
 *   a TLS client sees as `ERR_SSL_WRONG_VERSION_NUMBER`.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../fs.js';
import { freePort } from '../ports.js';
import { spawnServer } from './process.js';
import { ensureSystemUser } from './system-user.js';
import { type FtpServerUnderTest, type ServerOptions, secureOf } from './types.js';

export const VSFTPD = '/usr/sbin/vsftpd';

export async function startVsftpdServer(opts: ServerOptions): Promise<FtpServerUnderTest> {
  if (opts.mode !== 'plain' && !opts.pki) throw new Error('vsftpd: FTPS needs a pki');
  if (opts.maxListing !== undefined) throw new Error('vsftpd has no listing cap');
  const login = opts.anonymous
    ? { user: 'anonymous', password: 'anonymous@example.com' }
    : await ensureSystemUser();
  await chmod(opts.root, 0o755);
  const dir = await tempDir('vsftpd-conf');
  // secure_chroot_dir: empty, owned by root and not writable by anyone else.
  const empty = join(dir.path, 'empty');
  await chmod(dir.path, 0o755);
  await mkdir(empty, { mode: 0o755 });
  if (opts.pki) {
    await writeFile(join(dir.path, 'server.pem'), opts.pki.server.cert);
    await writeFile(join(dir.path, 'server.key'), opts.pki.server.key, { mode: 0o600 });
  }
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const conf = join(dir.path, 'vsftpd.conf');
    await writeFile(conf, config(opts, port, dir.path, login.user === 'anonymous'));
    try {
      const proc = await spawnServer({
        name: 'vsftpd',
        command: VSFTPD,
        args: [conf],
        port,
        implicitTls: opts.mode === 'implicit',
        env: opts.tz ? { TZ: opts.tz } : {},
      });
      let stopping: Promise<void> | undefined;
      return {
        kind: 'vsftpd',
        mode: opts.mode,
        host: '127.0.0.1',
        port,
        ...login,
        secure: secureOf(opts.mode),
        caFile: opts.mode === 'plain' ? undefined : opts.pki?.caFile,
        process: proc,
        stop() {
          stopping ??= proc.stop().then(dir.cleanup);
          return stopping;
        },
      };
    } catch (err) {
      // Most likely the port was taken between freePort() and vsftpd's bind.
      if (attempt >= 3) {
        await dir.cleanup();
        throw err;
      }
    }
  }
}

function config(o: ServerOptions, port: number, dir: string, anonymous: boolean): string {
  const lines = [
    'listen=YES',
    'listen_ipv6=NO',
    'listen_address=127.0.0.1',
    `listen_port=${port}`,
    'background=NO',
    `write_enable=${o.writable ? 'YES' : 'NO'}`,
    'pasv_enable=YES',
    'pasv_address=127.0.0.1',
    // 0/0 lets the kernel pick each passive port: nothing to collide with.
    'pasv_min_port=0',
    'pasv_max_port=0',
    'connect_from_port_20=NO',
    'seccomp_sandbox=NO',
    `secure_chroot_dir=${join(dir, 'empty')}`,
    'xferlog_enable=NO',
    'dirmessage_enable=NO',
    `use_localtime=${o.tz ? 'YES' : 'NO'}`,
  ];
  if (anonymous) {
    lines.push('anonymous_enable=YES', 'local_enable=NO', `anon_root=${o.root}`, 'no_anon_password=YES');
  } else {
    lines.push(
      'anonymous_enable=NO',
      'local_enable=YES',
      'pam_service_name=vsftpd',
      `local_root=${o.root}`,
      'chroot_local_user=YES',
      // The test root belongs to root and is not writable by the account anyway; this only silences
      // vsftpd's check when a test hands it a writable one.
      'allow_writeable_chroot=YES',
    );
  }
  if (o.mode !== 'plain') {
    lines.push(
      'ssl_enable=YES',
      `rsa_cert_file=${join(dir, 'server.pem')}`,
      `rsa_private_key_file=${join(dir, 'server.key')}`,
      'force_local_logins_ssl=YES',
      'force_local_data_ssl=YES',
      'allow_anon_ssl=YES',
      // Debian's default list is one legacy cipher; TLS 1.3 suites are not affected by it.
      'ssl_ciphers=HIGH',
      'require_ssl_reuse=YES',
    );
    if (o.mode === 'implicit') lines.push('implicit_ssl=YES');
  }
  if (o.maxLogins !== undefined) lines.push(`max_per_ip=${o.maxLogins}`);
  return `${lines.join('\n')}\n`;
}
