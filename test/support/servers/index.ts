/**
 * Launchers for the real FTP servers of the interop matrix (test/interop/, docs/interop.md), each on
 * a free 127.0.0.1 port with a password login, plain FTP or FTPS, and the limits a test asks for.
 */
import { startProftpd } from './proftpd.js';
import { startPureFtpd } from './pure-ftpd.js';
import type { FtpServerUnderTest, ServerKind, ServerOptions } from './types.js';
import { startVsftpdServer } from './vsftpd.js';

export * from './types.js';

export function startServer(kind: ServerKind, opts: ServerOptions): Promise<FtpServerUnderTest> {
  switch (kind) {
    case 'vsftpd':
      return startVsftpdServer(opts);
    case 'pure-ftpd':
      return startPureFtpd(opts);
    case 'proftpd':
      return startProftpd(opts);
  }
}
