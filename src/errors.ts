/**
 * Error classes. Retry is the default; "never retry" is a type. The mapping to BullMQ's
 * `UnrecoverableError` happens in exactly one place (`queue/worker.ts`).
 */

/** A failure that retrying cannot fix (550 file not found, file too large, hostile path). */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

/**
 * The source says the file or directory is not there (FTP 550 "No such file", SFTP NO_SUCH_FILE).
 * A refusal for another reason (permission) stays a plain `PermanentError`.
 */
export class NotFoundError extends PermanentError {
  override name = 'NotFoundError';
}

/**
 * A failure of the whole tenant (530 bad login after a credential refetch, TLS verification, missing
 * directory): the tenant is marked unhealthy, its polls back off, other tenants go on.
 */
export class TenantError extends PermanentError {
  override name = 'TenantError';
}

/** The source refused the login (FTP 530, SSH authentication): a wrong or rotated password or key. */
export class LoginRefusedError extends TenantError {
  override name = 'LoginRefusedError';
}

/** TLS (or SSH host key) verification failed, or the server refuses the session's TLS policy. */
export class TlsError extends TenantError {
  override name = 'TlsError';
}

/**
 * The source refused a session for having too many (FTP 421, or proftpd's 530 "too many"): transient;
 * the pool lowers the tenant's budget and pauses its logins.
 */
export class TooManyConnectionsError extends Error {
  override name = 'TooManyConnectionsError';
  readonly code = 421;
}

/** The source could not be reached: its name does not resolve, it refused the connection, or it timed out. Transient. */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
  constructor(
    message: string,
    readonly reason: 'dns' | 'refused' | 'timeout' | 'other' = 'other',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * The source refused to start a download at an offset (FTP `REST` answered 500/501/502/504): the
 * session is still usable, and the file can be read from its start instead.
 */
export class ResumeRefusedError extends Error {
  override name = 'ResumeRefusedError';
}

/** No connection slot of the tenant became free in time (its budget is used by the daemon). */
export class NoSlotError extends Error {
  override name = 'NoSlotError';
}

/**
 * The state store (Redis) did not answer: the connection is down or a command timed out. Transient;
 * the upload API answers 503 with Retry-After instead of an internal error.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** Turns anything thrown into an `Error`, keeping the original as `cause`. */
export function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(typeof err === 'string' ? err : JSON.stringify(err), { cause: err });
}

/** The first error of class `C` in `err`'s cause chain (`err` itself included). */
export function causeOf<C extends abstract new (...args: never[]) => Error>(
  err: unknown,
  C: C,
): InstanceType<C> | undefined {
  for (let e = err, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof C) return e as InstanceType<C>;
  }
  return undefined;
}

/** Our classes, which `withContext` keeps (a foreign error, e.g. basic-ftp's, becomes an `Error`). */
const OURS = new Set<unknown>([
  PermanentError,
  NotFoundError,
  TenantError,
  LoginRefusedError,
  TlsError,
  TooManyConnectionsError,
  NoSlotError,
]);

/**
 * Adds context in front of an error's message, keeping the original as `cause` and its type (callers
 * decide by type, never by message text): one of our classes stays that class.
 */
export function withContext(err: unknown, context: string): Error {
  const e = toError(err);
  const message = `${context}: ${e.message}`;
  let wrapped: Error;
  if (e instanceof UnreachableError) wrapped = new UnreachableError(message, e.reason, { cause: e });
  else if (OURS.has(e.constructor)) {
    wrapped = new (e.constructor as new (m: string, o?: ErrorOptions) => Error)(message, { cause: e });
  } else wrapped = new Error(message, { cause: e });
  const code = (e as { code?: unknown }).code;
  if (code !== undefined && !(wrapped instanceof TooManyConnectionsError)) {
    (wrapped as { code?: unknown }).code = code;
  }
  return wrapped;
}

/** The FTP reply code of a basic-ftp error (e.g. 550), if any. */
export function ftpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number') return code;
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  return cause && cause !== err ? ftpCode(cause) : undefined;
}
