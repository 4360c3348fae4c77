/**
 * Connects to a tenant's source, whatever its kind: FTP/FTPS (basic-ftp) or SFTP (ssh2). Everything
 * above this line sees only the `SourceSession` port.
 */
import type { TenantConfig } from '../config.js';
import type { SourceCredentials, SourceSession } from '../ports/source.js';
import { connectFtp } from './ftp.js';

export interface SourceConnectOptions {
  /** FTP: socket idle timeout. SFTP: login timeout and longest wait for any answer. */
  timeoutMs?: number;
}

/** Connects and logs in. Throws `TenantError` for a bad login, certificate or host key; other errors are transient. */
export function connectSource(
  tenant: TenantConfig,
  creds: SourceCredentials,
  opts: SourceConnectOptions = {},
): Promise<SourceSession> {
  if (tenant.source.kind !== 'sftp') return connectFtp(tenant, creds, opts);
  // ssh2 is loaded with the first SFTP tenant's first login (some 15 MiB a daemon of FTP tenants
  // does not need).
  return import('./sftp.js').then(({ connectSftp }) => connectSftp(tenant, creds, opts));
}
