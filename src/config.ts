/**
 * Configuration: one schema with each default beside its field; loaded and validated once at start,
 * then frozen. Nothing after `loadConfig` reads `process.env`.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { type AfterSyncAction, afterSyncProblem, moveTemplateProblem } from './sync/move-target.js';

/**
 * A configuration mistake. Every problem found in the file is in `issues` (each names its field);
 * the message is all of them, one per line. The CLI exits with code 2.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly exitCode = 2;
  readonly issues: readonly string[];
  constructor(issues: string | readonly string[]) {
    const list = typeof issues === 'string' ? [issues] : issues;
    super(list.join('\n'));
    this.issues = list;
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** `30s`, `5m`, `1h`, `500ms`, `1d` → milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  if (/^\s*-/.test(text)) throw new Error(`a duration cannot be negative, got ${JSON.stringify(text)}`);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(text);
  if (!m) throw new Error(`expected a duration like 30s, 5m or 1h, got ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * (UNITS[m[2]!.toLowerCase()] ?? 1));
}

/** `16MiB`, `5GB`, `1024` (bytes) → bytes. */
export function parseSize(text: string | number): number {
  if (typeof text === 'number') return text;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(text);
  if (!m) throw new Error(`expected a size like 16MiB or 5GB, got ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1));
}

const got = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));

/**
 * A duration field. `zero` says what 0 means for this field: a string (the meaning, e.g. "no
 * minimum age") accepts it; absent, 0 is refused with `why` (what 0 would do), so the error tells
 * the user why that field needs more.
 */
const duration = (opts: { zero?: string; why?: string } = {}) =>
  z.custom<string>().transform((v, ctx) => {
    if (typeof v !== 'string') {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 30s, 5m or 1h, got ${got(v)}` });
      return z.NEVER;
    }
    try {
      const ms = parseDuration(v);
      if (ms === 0 && opts.zero === undefined) {
        const why = opts.why ? ` (${opts.why})` : '';
        throw new Error(`expected a duration above 0${why}, got ${JSON.stringify(v)}`);
      }
      return ms;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const size = () =>
  z.custom<string | number>().transform((v, ctx) => {
    try {
      if (typeof v !== 'string' && typeof v !== 'number') throw new Error(`expected a size, got ${got(v)}`);
      const n = parseSize(v);
      if (n <= 0) throw new Error(`expected a positive size, got ${JSON.stringify(v)}`);
      return n;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** An integer in a range; numeric strings (from `${ENV}` expansion) are accepted. */
const int = (min: number, max: number, what = 'a number') =>
  z.custom<unknown>().transform((v, ctx) => {
    const n = typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `expected ${what} from ${min} to ${max}, got ${got(v)}` });
      return z.NEVER;
    }
    return n;
  });

const bool = () =>
  z.custom<unknown>().transform((v, ctx) => {
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    ctx.addIssue({ code: 'custom', message: `expected true or false, got ${got(v)}` });
    return z.NEVER;
  });

const str = (what = 'a non-empty string') =>
  z.string({ error: (iss) => `expected ${what}, got ${got(iss.input)}` }).min(1, `expected ${what}`);

/**
 * The hash tag of a Redis key (what a Redis Cluster hashes to pick the slot): the text between the
 * first `{` and the first `}` after it, when not empty; undefined otherwise (the whole key is hashed).
 */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

/** Lower-case letters, digits, `-` and `_`: safe in S3 keys, Redis keys and BullMQ job ids. */
export const ORG_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Call-data extensions synced when a tenant names no `include`. */
export const AUDIO_EXTENSIONS = [
  'wav',
  'mp3',
  'm4a',
  'ogg',
  'oga',
  'opus',
  'flac',
  'aac',
  'wma',
  'amr',
  'gsm',
];
export const RECORD_EXTENSIONS = ['csv', 'tsv', 'json', 'jsonl', 'ndjson'];
export const DEFAULT_INCLUDE = [`**/*.{${[...AUDIO_EXTENSIONS, ...RECORD_EXTENSIONS].join(',')}}`];

const secureSchema = z
  .custom<unknown>()
  .transform((v, ctx) => {
    if (v === false || v === 'false') return false as const;
    if (v === true || v === 'explicit' || v === 'true') return 'explicit' as const;
    if (v === 'implicit') return 'implicit' as const;
    ctx.addIssue({ code: 'custom', message: `expected false, explicit or implicit, got ${got(v)}` });
    return z.NEVER;
  })
  .default('explicit');

export const ftpSchema = z.strictObject({
  host: str('a host name'),
  port: int(1, 65535).optional(),
  /** `explicit` (AUTH TLS, the default), `implicit` (port 990) or `false` (plain FTP, warned at start). */
  secure: secureSchema,
  user: str('a user name').optional(),
  password: z.string().optional(),
  /** PEM file of a CA that signs the server's certificate (self-hosted CAs). */
  caFile: str('a file path').optional(),
  /** SHA-256 fingerprint of the server certificate to pin (`AA:BB:...`). */
  fingerprint: str('a SHA-256 fingerprint').optional(),
  /** Verify the server's certificate. Default true; turning it off is logged as a warning. */
  verifyCertificate: bool().default(true),
});

/** `SHA256:` and 43 base64 characters, as `ssh-keygen -lf` prints a host key's fingerprint. */
export const HOST_KEY_FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;

export const sftpSchema = z
  .strictObject({
    host: str('a host name'),
    port: int(1, 65535).default(22),
    user: str('a user name'),
    /** Password login; with `privateKeyFile` too, the key is tried first. */
    password: z.string().optional(),
    /** OpenSSH or PEM private key file (read at each login, so a replaced key is picked up). */
    privateKeyFile: str('a file path').optional(),
    /** Passphrase of an encrypted `privateKeyFile`. */
    passphrase: z.string().optional(),
    /** The server's host key, `SHA256:…` as `ssh-keygen -lf` prints it. Required unless `verifyHostKey: false`. */
    hostKeyFingerprint: z
      .string()
      .trim()
      .regex(HOST_KEY_FINGERPRINT, 'expected SHA256: and 43 base64 characters, as `ssh-keygen -lf` prints')
      .optional(),
    /** Check the host key against `hostKeyFingerprint`. Default true; turning it off is logged as a warning. */
    verifyHostKey: bool().default(true),
  })
  .superRefine((v, ctx) => {
    if (v.verifyHostKey && !v.hostKeyFingerprint) {
      ctx.addIssue({
        code: 'custom',
        path: ['hostKeyFingerprint'],
        message:
          'required unless verifyHostKey is false (ssh-keyscan -p PORT HOST | ssh-keygen -lf - prints it)',
      });
    }
  });

export const metadataSchema = z.strictObject({
  /** Manifest column names (first present wins). */
  columns: z
    .strictObject({
      file: z.array(str()).default(['file', 'recording', 'filename', 'file_name', 'recording_file']),
      email: z.array(str()).default(['email', 'agent_email', 'agent']),
      date: z.array(str()).default(['date_of_call', 'call_date', 'date']),
    })
    .prefault({}),
  /** Delimiter override for CSV/TSV manifests; default by extension. */
  delimiter: z.string().min(1).max(1).optional(),
  /** How dates in manifests and file names are written. `iso` is YYYY-MM-DD. */
  dateFormat: z.enum(['iso', 'DD/MM/YYYY', 'MM/DD/YYYY', 'YYYY/MM/DD']).default('iso'),
  /** Regular expression with named groups `email` and `date`, matched against the file name. */
  pattern: str('a regular expression')
    .refine(
      (p) => {
        try {
          new RegExp(p);
          return true;
        } catch {
          return false;
        }
      },
      { message: 'expected a valid regular expression' },
    )
    .optional(),
  defaultEmail: z.email({ error: (iss) => `expected an email address, got ${got(iss.input)}` }).optional(),
  /**
   * Use the file's modification date (UTC) as the date of call when no manifest row or pattern gives
   * one. Default: on when `defaultEmail` is set (the tenant's defaults), else off — a file's mtime is
   * when it was written to the server, often not the day of the call, and no date beats a wrong one.
   */
  dateFromMtime: bool().optional(),
  /**
   * When true, a recording without a manifest row is held (parked `missing-metadata`, visible) up to
   * `manifestWait` for one, released at once when it comes; after that it stays parked until a row
   * arrives or `resync` releases it. When false (default), metadata is optional: a recording is
   * checked and uploaded with what is known.
   */
  requireManifest: bool().default(false),
  manifestWait: duration({ zero: 'park at once' }).prefault('1h'),
});

const afterSyncSchema = () =>
  z.enum(['keep', 'delete', 'move'], {
    error: (iss) => `expected keep, delete or move, got ${got(iss.input)}`,
  });

const moveToSchema = () =>
  str('a path template like /archive/{path}').superRefine((t, ctx) => {
    const problem = moveTemplateProblem(t);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const tenantSchema = z
  .strictObject({
    org: z.string().regex(ORG_PATTERN, 'expected lower-case letters, digits, - and _ (at most 63)'),
    enabled: bool().default(true),
    /** The source: exactly one of `ftp` (FTP/FTPS) and `sftp` (SSH). */
    ftp: ftpSchema.optional(),
    sftp: sftpSchema.optional(),
    dirs: z.array(str('a directory')).min(1).default(['/']),
    include: z.array(str('a glob pattern')).optional(),
    exclude: z.array(str('a glob pattern')).default([]),
    pollInterval: duration({ why: '0 would poll without a pause' }).optional(),
    minFileAge: duration({ zero: 'no minimum age' }).optional(),
    maxConnections: int(1, 64).optional(),
    maxFileSize: size().optional(),
    metadata: metadataSchema.prefault({}),
    /** What happens to a source file once it is safely in S3 (README: After-sync action). */
    afterSync: afterSyncSchema().optional(),
    /** `afterSync: move`: the target path template (`/archive/{path}`). */
    moveTo: moveToSchema().optional(),
  })
  .superRefine((t, ctx) => {
    if (!t.ftp === !t.sftp) {
      ctx.addIssue({
        code: 'custom',
        path: t.ftp ? ['sftp'] : [],
        message: t.ftp ? 'a tenant has either ftp or sftp, not both' : 'expected an ftp or an sftp block',
      });
    }
  });

const velaSchema = z.preprocess(
  (v) => (v && typeof v === 'object' && !('enabled' in v) ? { ...v, enabled: true } : v),
  z.discriminatedUnion('enabled', [
    z.strictObject({ enabled: z.literal(false) }),
    z.strictObject({
      enabled: z.literal(true),
      url: z.url({ error: (iss) => `expected an http(s) URL, got ${got(iss.input)}` }),
      token: str('a bearer token'),
      timeout: duration({ why: 'Vela would have no time to answer' }).prefault('10s'),
    }),
  ]),
);

export const configSchema = z.strictObject({
  redis: z
    .strictObject({
      /** The server (`redis://user:pass@host:6379/0`, `rediss://` for TLS); credentials also for cluster and sentinel. */
      url: str('a redis:// URL').default('redis://127.0.0.1:6379'),
      /**
       * Key prefix for queues and sync state. On a Redis Cluster it must carry a hash tag so BullMQ's
       * keys share a slot; there the default is `{ftpsync}`, elsewhere `ftpsync`.
       */
      prefix: z
        .string()
        .regex(/^[A-Za-z0-9_.{}-]+$/, 'expected letters, digits, . _ - { }')
        .optional(),
      /** A Redis Cluster: `url` (or `nodes`) are its startup nodes. */
      cluster: bool().default(false),
      /** Startup nodes of a Redis Cluster (`host:port` or `redis://host:port`); implies `cluster: true`. */
      nodes: z.array(str('host:port or a redis:// URL')).min(1).optional(),
      /** Redis Sentinel: the primary named `name`, found through these sentinels (`host:port`). */
      sentinel: z
        .strictObject({
          name: str('the primary group name'),
          nodes: z.array(str('host:port of a sentinel')).min(1),
          /** Credentials of the sentinels themselves (the primary's come from `url`). */
          username: z.string().optional(),
          password: z.string().optional(),
        })
        .optional(),
    })
    .transform((r, ctx) => {
      const cluster = r.cluster || Boolean(r.nodes?.length);
      if (cluster && r.sentinel) {
        ctx.addIssue({ code: 'custom', path: ['sentinel'], message: 'a Redis Cluster has no sentinels' });
        return z.NEVER;
      }
      const prefix = r.prefix ?? (cluster ? '{ftpsync}' : 'ftpsync');
      if (cluster && !hashTag(prefix)) {
        ctx.addIssue({
          code: 'custom',
          path: ['prefix'],
          message: `on a Redis Cluster the prefix needs a hash tag so BullMQ's keys share one slot, e.g. "{${prefix.replace(/[{}]/g, '') || 'ftpsync'}}", got ${JSON.stringify(prefix)}`,
        });
        return z.NEVER;
      }
      return { ...r, prefix, cluster };
    })
    .prefault({}),
  s3: z.strictObject({
    bucket: str('a bucket name'),
    region: str().default('us-east-1'),
    endpoint: z.url({ error: (iss) => `expected a URL, got ${got(iss.input)}` }).optional(),
    forcePathStyle: bool().default(false),
    /**
     * Object key of each file. `{org}` must be a whole key segment (`{org}/`): the prefix up to it
     * is then unique per tenant, so no two tenants' keys can meet (`{org}-{path}` would let tenant
     * `a`'s `b-x.wav` and tenant `a-b`'s `x.wav` share a key).
     */
    keyTemplate: str()
      .default('{org}/{path}')
      .refine(
        (t) =>
          t.includes('{org}/') &&
          t.endsWith('{path}') &&
          t.indexOf('{path}') === t.length - 6 &&
          t.indexOf('{org}/') < t.indexOf('{path}'),
        {
          message: 'expected a template with {org}/ (the org as a whole key segment) and ending with {path}',
        },
      ),
    /** A PEM file of CA certificates to trust for an HTTPS endpoint (a store with a private CA). */
    caFile: str('a file path').optional(),
    /**
     * Files up to this size are uploaded with one PutObject (read into memory up to 16 MiB, streamed
     * above); larger ones with a multipart upload (see `multipartUpload`). A
     * streamed PutObject needs no part buffers, so memory does not grow with the file, and is cheaper
     * on CPU; but only a store that writes a PUT atomically keeps invariant 1 when the source fails
     * mid-file (AWS S3 and MinIO do; s3rver writes in place and would show the partial bytes), the SDK
     * cannot retry it, and S3 takes at most 5 GiB in one PUT.
     */
    multipartThreshold: size().prefault('16MiB'),
    /**
     * How a multipart upload sends its parts. `stream` (default): each part streams from the source
     * as it arrives — memory stays flat whatever the file or part size, no SHA-256 over the data;
     * a failed part fails the transfer (the job is retried). `buffer`: parts of 8 MiB or more are
     * read into memory and `queueSize` of them are sent in parallel with per-part retries — for a
     * distant store where one connection is slower than the source (memory ≈ (queueSize + 1) ×
     * partSize per upload).
     */
    multipartUpload: z.enum(['stream', 'buffer']).default('stream'),
    /** `multipartUpload: buffer`: parallel part uploads per multipart upload. */
    queueSize: int(1, 16).default(4),
    /**
     * A request (or a whole multipart upload) that makes no progress for this long is aborted and
     * retried: a store that stops answering never hangs a worker. Resets with every byte.
     */
    idleTimeout: duration({ why: 'every request would be aborted at once' }).prefault('60s'),
    /**
     * The worker role aborts our multipart uploads older than this once an hour (left behind by a
     * crashed worker). Longer than any upload can take; an S3 lifecycle rule is the second net.
     */
    staleUploadAge: duration({ why: 'uploads still running would be aborted' }).prefault('1d'),
  }),
  vela: velaSchema,
  defaults: z
    .strictObject({
      pollInterval: duration({ why: '0 would poll without a pause' }).prefault('60s'),
      /**
       * How long a source server may stay silent (connect, login, listing, data, the final reply of a
       * transfer) before the session is dropped and the poll or job retried. For every tenant.
       */
      sourceTimeout: duration({ why: 'every session would be dropped at once' }).prefault('30s'),
      minFileAge: duration({ zero: 'no minimum age' }).prefault('30s'),
      maxConnections: int(1, 64).default(2),
      allocationRecheck: duration({ why: 'Vela would be asked again without a pause' }).prefault('15m'),
      maxFileSize: size().prefault('10GiB'),
      /** What happens to a source file once it is safely in S3: keep (default), delete or move. */
      afterSync: afterSyncSchema().default('keep'),
      /** The default `moveTo` of tenants with `afterSync: move`. */
      moveTo: moveToSchema().optional(),
    })
    .prefault({}),
  worker: z
    .strictObject({
      /** Sync jobs processed at once per worker process. */
      concurrency: int(1, 256).default(8),
      /** Attempts of a sync job before it stays failed (backoff grows to 5 minutes). */
      attempts: int(1, 1000).default(40),
      /** On SIGTERM, how long transfers may run before they are aborted and handed back. */
      shutdownTimeout: duration({ zero: 'hand running transfers back at once' }).prefault('30s'),
      /** How long completed jobs are kept (the dedup window for job ids). */
      keepCompleted: duration({ why: 'completed jobs are the dedup window of their ids' }).prefault('1d'),
      /**
       * How long a sync job stays locked to its worker without a renewal (BullMQ `lockDuration`). A
       * replica that dies holding jobs gives them up after about this long plus `stalledInterval`.
       */
      lockDuration: duration({ why: 'another worker would take every running job' }).prefault('30s'),
      /** How often each worker looks for jobs whose worker died and queues them again (BullMQ `stalledInterval`). */
      stalledInterval: duration({ why: 'the stalled check needs an interval' }).prefault('30s'),
    })
    .prefault({}),
  credentials: z
    .strictObject({
      /** How long fetched FTP credentials are cached by a worker. */
      cacheTtl: duration({ zero: 'fetch credentials for every login' }).prefault('5m'),
    })
    .prefault({}),
  http: z
    .strictObject({
      enabled: bool().default(false),
      host: str().default('127.0.0.1'),
      port: int(1, 65535).default(9464),
      /** Token for /admin/queues and (when set) /metrics. */
      token: z.string().optional(),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
  tenants: z.array(tenantSchema).default([]),
});

type RawConfig = z.output<typeof configSchema>;
export type FtpConfig = z.output<typeof ftpSchema>;
export type SftpConfig = z.output<typeof sftpSchema>;
export type MetadataConfig = z.output<typeof metadataSchema>;

/** A tenant with the defaults applied. */
export interface TenantConfig {
  org: string;
  enabled: boolean;
  /** Which protocol and where, whatever the kind (for messages and summaries). */
  source: { kind: 'ftp' | 'sftp'; host: string; port: number; user?: string };
  /** Set when `source.kind` is `ftp`. */
  ftp?: FtpConfig & { port: number };
  /** Set when `source.kind` is `sftp`. */
  sftp?: SftpConfig;
  dirs: string[];
  include: string[];
  exclude: string[];
  pollInterval: number;
  minFileAge: number;
  maxConnections: number;
  maxFileSize: number;
  metadata: MetadataConfig;
  /** After a version is in S3 and marked synced: leave the source file, delete it, or move it to `moveTo`. */
  afterSync: AfterSyncAction;
  /** The target template when `afterSync` is `move` (validated at load). */
  moveTo?: string;
  /** Where the credentials come from: `config` (inline) or `redis` (onboarded at run time). */
  origin: 'config' | 'onboarded';
}

export interface Config extends Omit<RawConfig, 'tenants'> {
  tenants: TenantConfig[];
  /** AES-256-GCM key for onboarded tenants' credentials, from FTPSYNC_SECRET_KEY. */
  secretKey?: string;
}

/** Applies the defaults to one tenant entry (config file or onboarding). */
export function resolveTenant(
  t: z.output<typeof tenantSchema>,
  defaults: RawConfig['defaults'],
  origin: TenantConfig['origin'] = 'config',
): TenantConfig {
  const { ftp: rawFtp, sftp, ...rest } = t;
  const ftp = rawFtp && { ...rawFtp, port: rawFtp.port ?? (rawFtp.secure === 'implicit' ? 990 : 21) };
  // The schema guarantees exactly one of the two.
  const endpoint = ftp ?? sftp!;
  return {
    ...rest,
    source: { kind: ftp ? 'ftp' : 'sftp', host: endpoint.host, port: endpoint.port, user: endpoint.user },
    ...(ftp ? { ftp } : { sftp }),
    include: t.include ?? DEFAULT_INCLUDE,
    pollInterval: t.pollInterval ?? defaults.pollInterval,
    minFileAge: t.minFileAge ?? defaults.minFileAge,
    maxConnections: t.maxConnections ?? defaults.maxConnections,
    maxFileSize: t.maxFileSize ?? defaults.maxFileSize,
    afterSync: t.afterSync ?? defaults.afterSync,
    moveTo: t.moveTo ?? defaults.moveTo,
    origin,
  };
}

export const tenantInputSchema = tenantSchema;

/** `tenants[1].ftp.port` */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(top level)';
}

function formatIssue(iss: z.core.$ZodIssue): string {
  if (iss.code === 'unrecognized_keys') {
    return `${formatPath(iss.path)}: unknown key${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  if (iss.code === 'invalid_union')
    return `${formatPath(iss.path)}: expected { url, token } or { enabled: false }`;
  return `${formatPath(iss.path)}: ${iss.message}`;
}

/**
 * Fields that hold a secret the daemon cannot work without when it is given: an environment variable
 * that expands to the empty string there is a mistake (a variable exported empty, a blank line in an
 * env file), not a wish for an empty password. `http.token` is not one: empty turns the token off.
 */
const SECRET_FIELDS = [
  /^tenants\[\d+\]\.ftp\.password$/,
  /^tenants\[\d+\]\.sftp\.(password|passphrase|privateKeyFile)$/,
  /^vela\.token$/,
];

/** A `${VAR}` reference that could not be expanded, and the field it is in. */
export interface EnvProblem {
  path: PropertyKey[];
  message: string;
}

/**
 * Expands `${VAR}` in every string. A missing variable (or one set empty in a secret field) is added
 * to `problems`, naming the field, and the string is left as written; without `problems` the first
 * one is thrown as a ConfigError.
 */
export function expandEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: PropertyKey[] = [],
  problems?: EnvProblem[],
): unknown {
  const report = (message: string) => {
    if (!problems) throw new ConfigError(`${formatPath(path)}: ${message}`);
    problems.push({ path, message });
  };
  if (typeof value === 'string') {
    let missing = false;
    const names: string[] = [];
    const out = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name: string) => {
      names.push(name);
      const v = env[name];
      if (v === undefined) {
        missing = true;
        report(`environment variable ${name} is not set`);
        return whole;
      }
      return v;
    });
    if (missing) return value;
    if (names.length > 0 && out === '' && SECRET_FIELDS.some((re) => re.test(formatPath(path)))) {
      report(
        `environment variable ${names.join(', ')} is set but empty (this field needs a value, or leave it out)`,
      );
    }
    return out;
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, [...path, i], problems));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, [...path, k], problems)]),
    );
  }
  return value;
}

/** Same path, or `inner` is below `outer`. */
function within(inner: readonly PropertyKey[], outer: readonly PropertyKey[]): boolean {
  return outer.length <= inner.length && outer.every((p, i) => p === inner[i]);
}

/** Checks of the tenant list that the tenant schema (shared with onboarding) does not make. */
function tenantListProblems(tenants: unknown): EnvProblem[] {
  if (!Array.isArray(tenants)) return [];
  const out: EnvProblem[] = [];
  const seen = new Map<string, number>();
  tenants.forEach((t: unknown, i) => {
    if (!t || typeof t !== 'object') return;
    const { org, sftp } = t as { org?: unknown; sftp?: unknown };
    if (typeof org === 'string') {
      const first = seen.get(org);
      if (first !== undefined)
        out.push({ path: ['tenants', i, 'org'], message: `duplicate org "${org}" (also tenants[${first}])` });
      else seen.set(org, i);
    }
    // Onboarded tenants get their password from the credential store; one in the file needs it here.
    if (sftp && typeof sftp === 'object') {
      const { password, privateKeyFile } = sftp as { password?: unknown; privateKeyFile?: unknown };
      if (password === undefined && !privateKeyFile) {
        out.push({ path: ['tenants', i, 'sftp'], message: 'expected a password or a privateKeyFile' });
      }
    }
  });
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/**
 * Expands `${VAR}`s and validates a parsed document. Every problem is reported at once, in one
 * ConfigError: missing (or, for secrets, empty) environment variables, then schema problems in the
 * fields that had none.
 */
/** How a command loads the configuration. */
export interface LoadOptions {
  /**
   * `optional`: the tenants' source credentials (`ftp.user`/`password`, `sftp.*` keys) may name unset
   * variables — for commands that never log in to a source (`status`, `tenants list`). Such a field
   * keeps its `${VAR}` text, which no server accepts.
   */
  sourceCredentials?: 'required' | 'optional';
}

/** The fields a command that never logs in to a source does not need. */
const SOURCE_CREDENTIALS =
  /^tenants\[\d+\]\.(ftp\.(user|password)|sftp\.(user|password|passphrase|privateKeyFile))$/;

export function parseConfig(doc: unknown, env: NodeJS.ProcessEnv = {}, opts: LoadOptions = {}): Config {
  if (doc === null || doc === undefined) throw new ConfigError('the configuration is empty');
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError('the configuration must be a mapping');
  let envProblems: EnvProblem[] = [];
  const expanded = expandEnv(doc, env, [], envProblems);
  if (opts.sourceCredentials === 'optional') {
    envProblems = envProblems.filter((p) => !SOURCE_CREDENTIALS.test(formatPath(p.path)));
  }
  const problems = envProblems.map((p) => `${formatPath(p.path)}: ${p.message}`);
  const result = configSchema.safeParse(expanded);
  if (!result.success) {
    for (const iss of result.error.issues) {
      // A field whose variable is missing is reported once, for the variable.
      if (envProblems.some((p) => within(iss.path, p.path))) continue;
      problems.push(formatIssue(iss));
    }
  }
  for (const p of tenantListProblems((expanded as { tenants?: unknown }).tenants)) {
    // Not again for a block whose variable was already reported (an empty privateKeyFile).
    if (envProblems.some((e) => within(e.path, p.path))) continue;
    problems.push(`${formatPath(p.path)}: ${p.message}`);
  }
  const tenants = result.success
    ? result.data.tenants.map((t) => resolveTenant(t, result.data.defaults))
    : [];
  tenants.forEach((t, i) => {
    const problem = afterSyncProblem(t);
    if (problem) problems.push(`tenants[${i}].${problem.field}: ${problem.message}`);
  });
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  const raw = result.data;
  const config: Config = {
    ...raw,
    tenants,
    secretKey: env.FTPSYNC_SECRET_KEY || undefined,
  };
  return deepFreeze(config);
}

/** `file:line:column: not valid YAML: what was expected`, then the line with a caret under the column. */
function yamlProblem(
  file: string,
  err: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] },
) {
  // The yaml library's message is "<what> at line L, column C:\n\n<source line>\n<caret>\n".
  const [head = '', ...rest] = err.message.split('\n');
  const what = head.replace(/ at line \d+, column \d+:?$/, '').trim() || 'syntax error';
  const pos = err.linePos?.[0];
  const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
  const snippet = rest.filter((l) => l.trim() !== '').map((l) => `    ${l}`);
  return [
    `${where}: not valid YAML: ${what}${pos ? ` (line ${pos.line}, column ${pos.col})` : ''}`,
    ...snippet,
  ].join('\n');
}

/** Reads, expands and validates a YAML configuration file. */
export async function loadConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: LoadOptions = {},
): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${file}: cannot read the configuration (${(err as NodeJS.ErrnoException).code ?? err})`,
    );
  }
  const parsed = parseDocument(text, { prettyErrors: true });
  if (parsed.errors.length > 0) throw new ConfigError(parsed.errors.map((e) => yamlProblem(file, e)));
  return parseConfig(parsed.toJS(), env, opts);
}
