import type { TestPki } from '../tls.js';
import type { ServerProcess } from './process.js';

export type ServerKind = 'vsftpd' | 'pure-ftpd' | 'proftpd';

/** Plain FTP, explicit FTPS (AUTH TLS on the FTP port) or implicit FTPS (TLS from the first byte). */
export type TlsMode = 'plain' | 'explicit' | 'implicit';

/** What each server (as Debian builds it) offers; docs/interop.md has the details. */
export const TRAITS: Record<ServerKind, { mlsd: boolean; implicit: boolean; login: string }> = {
  vsftpd: { mlsd: false, implicit: true, login: 'system account through PAM' },
  'pure-ftpd': { mlsd: true, implicit: false, login: 'virtual user (puredb, pure-pw)' },
  proftpd: { mlsd: true, implicit: true, login: 'virtual user (AuthUserFile)' },
};

export interface ServerOptions {
  /** Directory the test user sees as `/` (chrooted). Made readable (0755) by the launcher. */
  root: string;
  mode: TlsMode;
  /** Certificates for FTPS; required unless `mode` is `plain`. */
  pki?: TestPki;
  /** TZ of the server process. vsftpd and proftpd are also told to list local times. */
  tz?: string;
  /** At most this many sessions of the test user (or from 127.0.0.1, for vsftpd) at once. */
  maxLogins?: number;
  /** Listing cap: at most this many entries in one LIST/MLSD reply (pure-ftpd `-L`, proftpd `ListOptions maxfiles`). */
  maxListing?: number;
  /** vsftpd only: log in as `anonymous` instead of a system account (when not root). */
  anonymous?: boolean;
  /**
   * vsftpd: allow DELE, RNFR/RNTO and MKD (`write_enable=YES`), for after-sync actions. pure-ftpd and
   * proftpd allow them as configured here anyway; the tree must be writable by the server's user.
   */
  writable?: boolean;
  /** pure-ftpd and proftpd: the tree `unpackDebs()` made. */
  debRoot?: string;
  /**
   * pure-ftpd: run inside this network namespace (`ip netns exec`, test/support/slow-link.ts),
   * listening (and answering PASV) on `listenAddress` there.
   */
  netns?: string;
  listenAddress?: string;
}

export interface FtpServerUnderTest {
  kind: ServerKind;
  mode: TlsMode;
  /** 127.0.0.1, or the namespace address of a server in a network namespace. */
  host: string;
  port: number;
  user: string;
  password: string;
  /** The tenant's `ftp.secure` for this mode. */
  secure: false | 'explicit' | 'implicit';
  /** The CA file for the tenant's `ftp.caFile` (FTPS only). */
  caFile?: string;
  process: ServerProcess;
  stop(): Promise<void>;
}

export const secureOf = (mode: TlsMode) => (mode === 'plain' ? false : mode);

/** The tenant's `ftp` block for a server. */
export function tenantFtp(server: FtpServerUnderTest): Record<string, unknown> {
  return {
    host: server.host,
    port: server.port,
    secure: server.secure,
    user: server.user,
    password: server.password,
    ...(server.caFile ? { caFile: server.caFile } : {}),
  };
}

/** A passive port range for servers that need one: 200 ports at a random base, rarely shared. */
export function passiveRange(): [number, number] {
  const base = 30_000 + Math.floor(Math.random() * 140) * 200;
  return [base, base + 199];
}
