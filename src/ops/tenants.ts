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
  include: string[];
  exclude: string[];
  minFileAge: number;
  maxFileSize: number;
  afterSync: TenantConfig['afterSync'];
  moveTo?: string;
  metadata: TenantConfig['metadata'];
}

function summarise(t: TenantConfig): TenantSummary {
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
    include: t.include,
    exclude: t.exclude,
    minFileAge: t.minFileAge,
    maxFileSize: t.maxFileSize,
    afterSync: t.afterSync,
    ...(t.moveTo !== undefined && { moveTo: t.moveTo }),
    metadata: t.metadata,
  };
}

export async function listTenants(ctx: OpsContext): Promise<TenantSummary[]> {
  return (await ctx.tenants.list()).map(summarise);
}

/**
 * Per-tenant settings given as options (the CLI's flags), each as in the configuration file;
 * `settings` is a partial tenant object the options are merged over.
 */
export interface TenantSettingsInput {
  host?: string;
  port?: number;
  secure?: 'explicit' | 'implicit' | 'false';
  dirs?: string[];
  include?: string[];
  exclude?: string[];
  maxConnections?: number;
  pollInterval?: string;
  minFileAge?: string;
  maxFileSize?: string;
  enabled?: boolean;
  afterSync?: 'keep' | 'delete' | 'move';
  moveTo?: string;
  defaultEmail?: string;
  pattern?: string;
  dateFormat?: string;
  dateFromMtime?: boolean;
  requireManifest?: boolean;
  manifestWait?: string;
  settings?: Record<string, unknown>;
}

export interface AddTenantInput extends TenantSettingsInput {
  org: string;
  host: string;
  user: string;
  password: string;
  dirs: string[];
}

const defined = <T extends Record<string, unknown>>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** The options as a partial tenant object, over `input.settings`. */
function settingsPatch(input: TenantSettingsInput): Record<string, unknown> {
  const base = input.settings ?? {};
  const ftp = defined({
    host: input.host,
    port: input.port,
    secure: input.secure === undefined ? undefined : input.secure === 'false' ? false : input.secure,
  });
  const metadata = defined({
    defaultEmail: input.defaultEmail,
    pattern: input.pattern,
    dateFormat: input.dateFormat,
    dateFromMtime: input.dateFromMtime,
    requireManifest: input.requireManifest,
    manifestWait: input.manifestWait,
  });
  const obj = (v: unknown) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {});
  return {
    ...base,
    ...(Object.keys(ftp).length && { ftp: { ...obj(base.ftp), ...ftp } }),
    ...(Object.keys(metadata).length && { metadata: { ...obj(base.metadata), ...metadata } }),
    ...defined({
      dirs: input.dirs?.length ? input.dirs : undefined,
      include: input.include?.length ? input.include : undefined,
      exclude: input.exclude?.length ? input.exclude : undefined,
      maxConnections: input.maxConnections,
      pollInterval: input.pollInterval,
      minFileAge: input.minFileAge,
      maxFileSize: input.maxFileSize,
      enabled: input.enabled,
      afterSync: input.afterSync,
      moveTo: input.moveTo,
    }),
  };
}

export async function addTenant(ctx: OpsContext, input: AddTenantInput): Promise<TenantSummary> {
  const patch = settingsPatch(input);
  const tenant: Record<string, unknown> = {
    ...patch,
    org: input.org,
    ...(!patch.sftp && { ftp: { secure: 'explicit', ...(patch.ftp as object) } }),
    dirs: patch.dirs ?? ['/'],
  };
  const before = await ctx.tenants.get(input.org);
  const t = await ctx.tenants.add({ tenant, user: input.user, password: input.password });
  // New credentials (or a new server): the next poll logs in at once, not after the backoff.
  if (before) await ctx.state.setHealth(t.org, 'ok');
  return summarise(t);
}

export interface UpdateTenantInput extends TenantSettingsInput {
  org: string;
  user?: string;
  password?: string;
}

/**
 * Changes only the given settings of an onboarded tenant; keeps its password unless one is given.
 * Undefined when there is no such onboarded tenant. Changed credentials or source end the poll
 * backoff, so the next poll logs in at once.
 */
export async function updateTenant(
  ctx: OpsContext,
  input: UpdateTenantInput,
): Promise<TenantSummary | undefined> {
  const patch = settingsPatch(input);
  const t = await ctx.tenants.update(
    input.org,
    patch,
    defined({ user: input.user, password: input.password }),
  );
  if (!t) return undefined;
  const sourceChanged = input.user !== undefined || input.password !== undefined || patch.ftp || patch.sftp;
  if (sourceChanged) await ctx.state.setHealth(t.org, 'ok');
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
      // It logs in and lists: the poll backoff of an unhealthy tenant ends, the next poll runs at once.
      if (!missing) await ctx.state.setHealth(org, 'ok').catch(() => {});
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
