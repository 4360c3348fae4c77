/**
 * What an FTP server's refusals mean: a login refused, a TLS policy or verification failure, too many
 * sessions (whatever code the server says it with), an unreachable host. The FTP adapter turns
 * basic-ftp's errors into these types; nothing else reads reply texts.
 */
import { connect as connectTcp } from 'node:net';
import {
  ftpCode,
  LoginRefusedError,
  TenantError,
  TlsError,
  TooManyConnectionsError,
  UnreachableError,
  withContext,
} from '../errors.js';

/**
 * Refusals for too many sessions, whatever code they come with: proftpd's `MaxClientsPerUser` and
 * `MaxClientsPerHost` answer **530** (the code of a wrong password), vsftpd and pure-ftpd 421.
 */
export const TOO_MANY =
  /too many|maximum number of (?:allowed )?(?:clients|connections|users)|more than \d+ connections/i;

/** A 550 that says the file is not there (vsftpd, pure-ftpd, proftpd, ftp-srv wordings). */
export const NOT_FOUND = /no such file|not found|does ?n[o']t exist|cannot find|ENOENT/i;

/** A server refusing a session over its TLS policy: vsftpd 530, pure-ftpd 421, proftpd 550. */
const WANTS_TLS = /\b(?:TLS|SSL)\b|encryption|cleartext/i;

export const replyText = (err: unknown) =>
  ((err as Error | undefined)?.message ?? '').replace(/\s+/g, ' ').trim();

/** Classifies a login/connect failure into a tenant-level or transient error. */
export function classifyConnectError(err: unknown, host: string): Error {
  if (err instanceof TenantError) return err; // already says what and where (a fingerprint mismatch)
  const code = ftpCode(err);
  const e = err as NodeJS.ErrnoException & { code?: unknown };
  const tooMany = () =>
    new TooManyConnectionsError(
      `${host} refused the connection (421 too many connections?): ${replyText(err)}`,
      {
        cause: err,
      },
    );
  // The pool backs off on 421: a "too many" refusal is one whatever code the server said it with.
  if ((code === 530 || code === 421) && TOO_MANY.test(replyText(err))) return tooMany();
  if (code !== undefined && code >= 400 && WANTS_TLS.test(replyText(err))) {
    return new TlsError(`${host} refused the session over TLS: "${replyText(err)}" (check ftp.secure)`);
  }
  if (code === 530)
    return new LoginRefusedError(`login to ${host} refused (530): check the user and password`);
  if (code === 421) return tooMany();
  if (typeof e?.code === 'string') {
    if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN')
      return new UnreachableError(`cannot resolve ${host} (DNS): ${e.message}`, 'dns', { cause: err });
    if (e.code === 'ECONNREFUSED')
      return new UnreachableError(`connection to ${host} refused: ${e.message}`, 'refused', { cause: err });
    if (e.code.startsWith('ERR_TLS') || e.code.includes('CERT') || e.code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
      return new TlsError(`TLS verification of ${host} failed: ${e.message}`, { cause: err });
    }
  }
  if (/certificate|fingerprint/i.test(e?.message ?? '')) {
    return new TlsError(`TLS verification of ${host} failed: ${e.message}`, { cause: err });
  }
  if (/timeout|timed out/i.test(e?.message ?? '')) {
    return new UnreachableError(`timeout connecting to ${host}: ${e.message}`, 'timeout', { cause: err });
  }
  return withContext(err, `cannot connect to ${host}`);
}

/**
 * An implicit-TLS login that failed with "wrong version number": the server spoke plain text. vsftpd
 * does that on an implicit port when it refuses a connection (`421 There are too many connections`
 * goes out before any handshake); a port that speaks plain FTP does it always. One plain read of
 * the first line tells them apart: a 421 is backed off like any other, a 220 is the tenant's mistake.
 */
export async function classifyPlainAnswer(err: unknown, host: string, port: number): Promise<Error> {
  const line = await firstLine(host, port, 3_000).catch(() => undefined);
  const code = line && /^\d{3}[ -]/.test(line) ? Number(line.slice(0, 3)) : undefined;
  if (code === 220) {
    return new TenantError(
      `${host}:${port} answers in plain text ("${line}"): not an implicit TLS port (check ftp.secure and ftp.port)`,
    );
  }
  if (code !== undefined && code >= 400)
    return classifyConnectError(Object.assign(new Error(line), { code }), host);
  return classifyConnectError(err, host);
}

/** The first line a server sends on a plain TCP connection (which is then closed). */
function firstLine(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host, port });
    let text = '';
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('no answer')));
    socket.on('data', (b) => {
      text += b.toString('latin1');
      const end = text.indexOf('\n');
      if (end >= 0) {
        resolve(text.slice(0, end).trim());
        socket.destroy();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed without an answer')));
  });
}
