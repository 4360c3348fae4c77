/**
 * The schema of one tenant: its source (`ftp` or `sftp`), directories, filters, limits, call
 * metadata and after-sync action; each default beside its field.
 */
import { z } from 'zod';
import { moveTemplateProblem } from '../sync/move-target.js';
import { bool, duration, got, int, rate, size, str } from './fields.js';

/** The smallest `maxBandwidth`: a grant (16 KiB) must come well within a source timeout. */
export const MIN_BANDWIDTH = 16 * 1024;

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
/** Zip batches found on a source: synced like any file, then expanded (`archives`, README: Batch upload). */
export const ARCHIVE_EXTENSIONS = ['zip'];
export const DEFAULT_INCLUDE = [
  `**/*.{${[...AUDIO_EXTENSIONS, ...RECORD_EXTENSIONS, ...ARCHIVE_EXTENSIONS].join(',')}}`,
];

/** What happens to a `.zip` on a tenant's source: synced and expanded, synced only, or not synced. */
export const archivesSchema = () => z.enum(['expand', 'keep', 'ignore']);

/** Safety limits of a zip batch (README: Batch upload); each can be set per tenant under `batch:`. */
export const batchLimitsSchema = z.strictObject({
  /** Largest archive (the platform's figure: 3 GB). */
  maxArchiveBytes: size().prefault('3GiB'),
  maxEntries: int(1, 1_000_000).default(10_000),
  /** Largest sum of the uncompressed sizes of the entries expanded from one archive. */
  maxUncompressedBytes: size().prefault('8GiB'),
  /** An entry above `bombMinBytes` expanding more than this many times its compressed size is refused. */
  maxRatio: int(1, 100_000).default(100),
  bombMinBytes: size().prefault('1MiB'),
  /** Largest central directory read into memory. */
  maxCentralDirectoryBytes: size().prefault('64MiB'),
});

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

const ftpSchema = z.strictObject({
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
const HOST_KEY_FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;

const sftpSchema = z
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

export const afterSyncSchema = () =>
  z.enum(['keep', 'delete', 'move'], {
    error: (iss) => `expected keep, delete or move, got ${got(iss.input)}`,
  });

export const moveToSchema = () =>
  str('a path template like /archive/{path}').superRefine((t, ctx) => {
    const problem = moveTemplateProblem(t);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

export const tenantSchema = z
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
    /**
     * The most this tenant's transfers read from its server together, in bytes per second, across
     * every replica (`10MiB/s`). Default: no cap.
     */
    maxBandwidth: rate(MIN_BANDWIDTH).optional(),
    metadata: metadataSchema.prefault({}),
    /** What happens to a source file once it is safely in S3 (README: After-sync action). */
    afterSync: afterSyncSchema().optional(),
    /** `afterSync: move`: the target path template (`/archive/{path}`). */
    moveTo: moveToSchema().optional(),
    /** A `.zip` on the source: `expand` (default), `keep` (synced, not expanded), `ignore` (not synced). */
    archives: archivesSchema().optional(),
    /** This tenant's zip batch limits, over `defaults.batch`. */
    batch: z
      .strictObject({
        maxArchiveBytes: size().optional(),
        maxEntries: int(1, 1_000_000).optional(),
        maxUncompressedBytes: size().optional(),
        maxRatio: int(1, 100_000).optional(),
        bombMinBytes: size().optional(),
        maxCentralDirectoryBytes: size().optional(),
      })
      .optional(),
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

export type FtpConfig = z.output<typeof ftpSchema>;
export type SftpConfig = z.output<typeof sftpSchema>;
export type MetadataConfig = z.output<typeof metadataSchema>;
