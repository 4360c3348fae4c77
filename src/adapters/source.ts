/**
 * Connects to a tenant's source, whatever its kind: FTP/FTPS (basic-ftp) or SFTP (ssh2). Everything
 * above this line sees only the `SourceSession` port.
 */
import type { TenantConfig } from '../config.js';
import type { SourceCredentials, SourceSession } from '../ports/source.js';
import { connectFtp } from './ftp.js';
import { connectSftp } from './sftp.js';

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
  return tenant.source.kind === 'sftp' ? connectSftp(tenant, creds, opts) : connectFtp(tenant, creds, opts);
}
