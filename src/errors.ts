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

/** Adds context in front of an error's message, keeping the original as `cause`. */
export function withContext(err: unknown, context: string): Error {
  const e = toError(err);
  const Ctor = e instanceof TenantError ? TenantError : e instanceof PermanentError ? PermanentError : Error;
  const wrapped = new Ctor(`${context}: ${e.message}`, { cause: e });
  const code = (e as { code?: unknown }).code;
  if (code !== undefined) (wrapped as { code?: unknown }).code = code;
  return wrapped;
}

/** The FTP reply code of a basic-ftp error (e.g. 550), if any. */
export function ftpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number') return code;
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  return cause && cause !== err ? ftpCode(cause) : undefined;
}
