/**
 * The configuration schema: one zod schema with each default beside its field, and the resolved
 * types the rest of the code reads.
 */
import { z } from 'zod';
import type { AfterSyncAction } from '../sync/move-target.js';
import { bool, duration, got, int, size, str } from './fields.js';
import {
  afterSyncSchema,
  archivesSchema,
  batchLimitsSchema,
  DEFAULT_INCLUDE,
  type FtpConfig,
  type MetadataConfig,
  metadataSchema,
  moveToSchema,
  type SftpConfig,
  tenantSchema,
} from './tenant.js';

/**
 * The hash tag of a Redis key (what a Redis Cluster hashes to pick the slot): the text between the
 * first `{` and the first `}` after it, when not empty; undefined otherwise (the whole key is hashed).
 */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

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
    /**
     * The smallest part of a multipart upload (larger files get larger parts: at most 2,000 of
     * them). S3 takes parts of 5 MiB or more. A retry of an interrupted streamed upload resumes
     * after its last complete part, so a smaller part loses less on a cut.
     */
    partSize: size().prefault('8MiB'),
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
      /** What happens to a `.zip` on a source: `expand` (synced, then expanded), `keep`, `ignore`. */
      archives: archivesSchema().default('expand'),
      /** Zip batch safety limits (README: Batch upload). */
      batch: batchLimitsSchema.prefault({}),
    })
    .prefault({}),
  worker: z
    .strictObject({
      /** Sync jobs processed at once per worker process. */
      concurrency: int(1, 256).default(8),
      /**
       * Entries of one zip batch expanded at once (README: Batch upload): each holds up to 16 MiB in
       * memory while its PutObject runs; larger entries stream as multipart uploads.
       */
      batchEntries: int(1, 16).default(4),
      /**
       * Small files (up to 8 MiB) of one tenant carried by one sync job: synced one after the other on
       * one session, each still its own version with its own sync state. A poll's small files are spread
       * over at least as many jobs as the tenant has connection slots. 1 gives every file its own job.
       */
      groupFiles: int(1, 1000).default(50),
      /** Attempts of a sync job before it stays failed (backoff grows to 5 minutes). */
      attempts: int(1, 1000).default(40),
      /** On SIGTERM, how long transfers may run before they are aborted and handed back. */
      shutdownTimeout: duration({ zero: 'hand running transfers back at once' }).prefault('30s'),
      /**
       * How long completed sync jobs are kept, for debugging only: 0 (the default) removes a job as it
       * completes. Deduplication does not depend on it (sync state and the jobs still pending are it).
       */
      keepCompleted: duration({ zero: 'remove each completed job at once' }).prefault('0s'),
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
  /** The upload API (role `api`): presigned POSTs for customers' applications (README, "Upload API"). */
  api: z.preprocess(
    // A section given turns the API on in role `all`; without one, only `--role api` starts it.
    (v) =>
      v === undefined
        ? { enabled: false }
        : v && typeof v === 'object' && !('enabled' in v)
          ? { ...v, enabled: true }
          : v,
    z.strictObject({
      /** Part of role `all` (role `api` always serves it). Default: true when the section is given. */
      enabled: bool(),
      host: str().default('127.0.0.1'),
      port: int(0, 65535).default(8080),
      /**
       * The base URL clients reach this server at, for the docs page and the OpenAPI `servers`
       * (behind a proxy); default: the listening address.
       */
      publicUrl: z.url({ error: (iss) => `expected a URL, got ${got(iss.input)}` }).optional(),
      /** Presign requests per org and minute, across all replicas (counted in Redis). */
      rateLimit: int(1, 1_000_000).default(600),
      /** The largest upload a presigned POST allows (its `content-length-range`). */
      maxUploadSize: size().prefault('3GiB'),
      /** How long a presigned POST stays valid. */
      presignExpiry: duration({ why: 'every presigned POST would be expired when handed out' }).prefault(
        '15m',
      ),
      /** How often pending uploads are looked for in the store (one listing per org with pending uploads). */
      sweepInterval: duration({ why: 'the sweep would run without a pause' }).prefault('30s'),
      /** The largest request body accepted (JSON, form or query). */
      maxBodySize: size().prefault('16KiB'),
    }),
  ),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
  tenants: z.array(tenantSchema).default([]),
});

type RawConfig = z.output<typeof configSchema>;

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
  /** Bytes per second for all of the tenant's transfers together, every replica; undefined: no cap. */
  maxBandwidth?: number;
  metadata: MetadataConfig;
  /** After a version is in S3 and marked synced: leave the source file, delete it, or move it to `moveTo`. */
  afterSync: AfterSyncAction;
  /** The target template when `afterSync` is `move` (validated at load). */
  moveTo?: string;
  /** A `.zip` on the source: synced and expanded, synced only, or not synced. */
  archives: 'expand' | 'keep' | 'ignore';
  /** Zip batch limits (defaults.batch with the tenant's own over them). */
  batch: z.output<typeof batchLimitsSchema>;
  /** Where the credentials come from: `config` (inline) or `redis` (onboarded at run time). */
  origin: 'config' | 'onboarded' | 'api';
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
    // `archives: ignore`: a zip is not even synced.
    exclude: (t.archives ?? defaults.archives) === 'ignore' ? [...t.exclude, '**/*.zip'] : t.exclude,
    archives: t.archives ?? defaults.archives,
    batch: {
      ...defaults.batch,
      ...Object.fromEntries(Object.entries(t.batch ?? {}).filter(([, v]) => v !== undefined)),
    },
    pollInterval: t.pollInterval ?? defaults.pollInterval,
    minFileAge: t.minFileAge ?? defaults.minFileAge,
    maxConnections: t.maxConnections ?? defaults.maxConnections,
    maxFileSize: t.maxFileSize ?? defaults.maxFileSize,
    afterSync: t.afterSync ?? defaults.afterSync,
    moveTo: t.moveTo ?? defaults.moveTo,
    origin,
  };
}

/**
 * An org of the upload API only (registered by `tokens create`, no source of its own): the defaults'
 * call settings (metadata, batch limits) and no source to poll. Its uploads and zip batches are calls
 * like any tenant's.
 */
export function apiOnlyTenant(org: string, defaults: RawConfig['defaults']): TenantConfig {
  return {
    org,
    enabled: true,
    source: { kind: 'ftp', host: '(upload API)', port: 0 },
    dirs: [],
    include: DEFAULT_INCLUDE,
    exclude: [],
    pollInterval: defaults.pollInterval,
    minFileAge: defaults.minFileAge,
    maxConnections: defaults.maxConnections,
    maxFileSize: defaults.maxFileSize,
    metadata: metadataSchema.parse({}),
    afterSync: 'keep',
    archives: defaults.archives,
    batch: defaults.batch,
    origin: 'api',
  };
}

export const tenantInputSchema = tenantSchema;
