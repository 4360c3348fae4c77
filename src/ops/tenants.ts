/**
 * `tenants add | list | remove | test`. Onboarded tenants live in Redis with their password
 * encrypted; `list` and `test` never show a password.
 */
import type { FtpConfig, TenantConfig } from '../config.js';
import {
  causeOf,
  LoginRefusedError,
  NoSlotError,
  NotFoundError,
  TenantError,
  TlsError,
  TooManyConnectionsError,
  toError,
  UnreachableError,
} from '../errors.js';
import { walk } from '../sync/walk.js';
import { acquireSession, type OpsContext } from './context.js';

export interface TenantSummary {
  org: string;
  origin: TenantConfig['origin'];
  enabled: boolean;
  host: string;
  port: number;
  /** FTPS mode (`false`: plain FTP), or `sftp` for an SFTP source. */
  secure: FtpConfig['secure'] | 'sftp';
  user?: string;
  dirs: string[];
  pollInterval: number;
  maxConnections: number;
}

export function summarise(t: TenantConfig): TenantSummary {
  return {
    org: t.org,
    origin: t.origin,
    enabled: t.enabled,
    host: t.source.host,
    port: t.source.port,
    secure: t.ftp ? t.ftp.secure : 'sftp',
    user: t.source.user,
    dirs: t.dirs,
    pollInterval: t.pollInterval,
    maxConnections: t.maxConnections,
  };
}

export async function listTenants(ctx: OpsContext): Promise<TenantSummary[]> {
  return (await ctx.tenants.list()).map(summarise);
}

export interface AddTenantInput {
  org: string;
  host: string;
  port?: number;
  secure?: 'explicit' | 'implicit' | 'false';
  user: string;
  password: string;
  dirs: string[];
  include?: string[];
  exclude?: string[];
  maxConnections?: number;
  pollInterval?: string;
}

export async function addTenant(ctx: OpsContext, input: AddTenantInput): Promise<TenantSummary> {
  const tenant: Record<string, unknown> = {
    org: input.org,
    ftp: {
      host: input.host,
      ...(input.port !== undefined && { port: input.port }),
      secure: input.secure === 'false' ? false : (input.secure ?? 'explicit'),
    },
    dirs: input.dirs.length ? input.dirs : ['/'],
    ...(input.include?.length && { include: input.include }),
    ...(input.exclude?.length && { exclude: input.exclude }),
    ...(input.maxConnections !== undefined && { maxConnections: input.maxConnections }),
    ...(input.pollInterval !== undefined && { pollInterval: input.pollInterval }),
  };
  const t = await ctx.tenants.add({ tenant, user: input.user, password: input.password });
  return summarise(t);
}

export async function removeTenant(ctx: OpsContext, org: string): Promise<boolean> {
  const t = await ctx.tenants.get(org);
  if (t?.origin === 'config')
    throw new Error(`tenant "${org}" is defined in the configuration file: remove it there`);
  return ctx.tenants.remove(org);
}

export interface TestReport {
  org: string;
  ok: boolean;
  /** What failed: dns | refused | timeout | unreachable | too-many-connections | busy | tls | login | missing-directory | tenant | other */
  failure?: string;
  message: string;
  tls?: { protocol: string; cipher: string; authorized: boolean; subject?: string; fingerprint?: string };
  listingFormat?: 'MLSD' | 'LIST' | 'SFTP';
  matched?: number;
  sample?: { path: string; size: number; mtime: string }[];
  ms: number;
}

/** What failed, by the error's type (the adapters say what kind of failure it is, not only how). */
function classifyFailure(err: Error): string {
  if (causeOf(err, NoSlotError)) return 'busy';
  if (causeOf(err, TooManyConnectionsError)) return 'too-many-connections';
  const unreachable = causeOf(err, UnreachableError);
  if (unreachable) return unreachable.reason === 'other' ? 'unreachable' : unreachable.reason;
  if (causeOf(err, TlsError)) return 'tls';
  if (causeOf(err, LoginRefusedError)) return 'login';
  if (causeOf(err, NotFoundError)) return 'missing-directory';
  // basic-ftp's and ssh2's own timeouts (a listing, a reply) carry no code of their own.
  if (/timeout|timed out/i.test(err.message)) return 'timeout';
  if (causeOf(err, TenantError)) return 'tenant';
  return 'other';
}

/**
 * Logs in, lists the directories, counts matching files; never throws. The login takes a slot of the
 * tenant's connection budget like any poll or transfer (invariant 5), waiting up to `waitMs` for one.
 */
export async function testTenant(
  ctx: OpsContext,
  org: string,
  opts: { waitMs?: number } = {},
): Promise<TestReport> {
  const started = Date.now();
  const t = await ctx.tenants.get(org);
  if (!t) return { org, ok: false, failure: 'unknown-tenant', message: `no tenant "${org}"`, ms: 0 };
  try {
    const lease = await acquireSession(ctx, t, opts.waitMs ?? 30_000);
    try {
      const { files, missingDirs } = await walk(lease.session, {
        dirs: t.dirs,
        include: t.include,
        exclude: t.exclude,
      });
      // A poll syncs the other directories (the tenant is degraded); a test of the set-up fails.
      const missing = missingDirs.length > 0;
      return {
        org,
        ok: !missing,
        ...(missing && { failure: 'missing-directory' }),
        message: missing
          ? `logged in to ${t.source.host}:${t.source.port}; ${missingDirs.join(', ')} not found on the server (check dirs); listed the others`
          : `logged in to ${t.source.host}:${t.source.port} and listed ${t.dirs.join(', ')}`,
        tls: lease.session.tls,
        // Only a listed file tells which format the server used.
        listingFormat:
          t.source.kind === 'sftp'
            ? 'SFTP'
            : files.length
              ? files.some((f) => f.mtimeExact)
                ? 'MLSD'
                : 'LIST'
              : undefined,
        matched: files.length,
        sample: files.slice(0, 5).map((f) => ({ path: f.path, size: f.size, mtime: f.mtime })),
        ms: Date.now() - started,
      };
    } finally {
      await ctx.pool.release(lease, true);
    }
  } catch (e) {
    const err = toError(e);
    const failure = classifyFailure(err);
    return {
      org,
      ok: false,
      failure,
      message: err.message,
      ms: Date.now() - started,
    };
  }
}
