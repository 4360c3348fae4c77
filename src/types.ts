/**
 * Domain types of ftp-sync.
 *
 * Terminology (the same words are used in code, logs and docs):
 * - **tenant**: a customer organisation, keyed by `org` (Vela's `org_id`). Owns one source, its
 *   credentials, a minute allocation in Vela and an S3 key prefix.
 * - **source**: a tenant's FTP/FTPS server, the directories to watch and the include/exclude filters.
 * - **remote file**: one listing entry: path (relative to the source root), size, modification time.
 * - **version**: a remote file's (path, size, mtime); a changed file is a new version.
 * - **poll**: one listing of one tenant's source, which adds a sync job for every new, stable version.
 * - **sync job**: the transfer of one version into one S3 object.
 * - **sync state**: per tenant, which version of each path is in S3, under which key, since when.
 * - **allocation check**: the call to Vela for one call, before its upload.
 * - **parked**: a job held back on purpose (allocation exceeded, a manifest row required and missing,
 *   tenant disabled or unhealthy), visible in `status` and resumable; never silently dropped.
 * - **waiting** (a job): delayed for something that will come by itself (a free connection slot, a
 *   call record being indexed); not an attempt, not parked.
 * - **call record / manifest**: a CSV, TSV or JSON file whose rows give recordings their agent's email
 *   and date of call. **Pending** while listed but not yet indexed; **indexed** once its rows are
 *   stored. **Manifest first**: a recording without a row waits while a call record is pending.
 * - **call metadata**: a recording's email and date of call, each optional; its **metadata source**
 *   says where it came from: `manifest`, `pattern`, `defaults`, `partial` or `none`.
 * - **session**: one logged-in connection to a tenant's source (one command at a time).
 * - **pool**: a process's sessions per tenant, reused between jobs (`sync/pool.ts`).
 * - **lease**: a session's claim on one of the tenant's `maxConnections` **slots**, shared by every
 *   replica through the connection budget; a lease expires unless renewed, so a dead replica's slots
 *   come back.
 * - **after-sync action**: keep, delete or move the source file once its version is verified in S3
 *   and its sync state written.
 * - **degraded**: a tenant whose last poll missed some configured directories and synced the others.
 * - **port / adapter**: an interface the domain uses (`src/ports`) / its implementation on a library
 *   (`src/adapters`, `src/queue` for BullMQ, `src/http` for Hono); wired in one place, `src/root.ts`.
 */

/** One listing entry. `path` is relative to the source root and always uses `/`. */
export interface RemoteFile {
  path: string;
  size: number;
  /**
   * The modification time as a stable token: an ISO-8601 UTC timestamp when the server gave an exact
   * time (MLSD), otherwise the raw LIST string, which we never trust to the second or its timezone.
   */
  mtime: string;
  /** True when `mtime` is an exact UTC time (MLSD). */
  mtimeExact: boolean;
  /** Best-effort parsed modification time (may be off by the server's timezone when not exact). */
  modifiedAt?: Date;
}

/** What identifies one version of a remote file. */
export interface Version {
  path: string;
  size: number;
  mtime: string;
}

/** Per-call metadata sent to Vela and stored on the object. */
/**
 * Where a call's metadata came from: a manifest row, the file name pattern, the tenant's defaults;
 * `partial` when only one of email and date is known, `none` when neither is (metadata is optional:
 * such a call is still checked with Vela and uploaded); `api` when the upload API's caller gave it.
 */
export type MetadataSource = 'manifest' | 'pattern' | 'defaults' | 'partial' | 'api' | 'none';

export const METADATA_SOURCES: readonly MetadataSource[] = [
  'manifest',
  'pattern',
  'defaults',
  'partial',
  'api',
  'none',
];

/** A call's metadata; each field only when known. */
export interface CallMetadata {
  email?: string;
  /** YYYY-MM-DD */
  dateOfCall?: string;
  source: MetadataSource;
}

export type AllocationStatus = 'within' | 'exceeded';

export interface AllocationAnswer {
  allocation: AllocationStatus;
  remainingMinutes?: number;
  /** Vela's `voice_id` status string, recorded with the call. */
  voiceId: string;
}

/** Sync state of one path: the version in S3, under which key, since when. */
export interface SyncRecord {
  size: number;
  mtime: string;
  key: string;
  /** The object's ETag when just uploaded; not kept in sync state (S3's HEAD has it). */
  etag?: string;
  /** ms since epoch */
  syncedAt: number;
}

/** A file held back on purpose. */
export interface ParkedRecord {
  path: string;
  jobId: string;
  reason: 'allocation-exceeded' | 'missing-metadata' | 'tenant-disabled' | 'tenant-unhealthy';
  detail?: string;
  /** ms since epoch */
  since: number;
}

/** Data of a sync job. Never holds a credential: only the tenant and the version. */
export interface SyncJobData {
  org: string;
  path: string;
  size: number;
  mtime: string;
  /** Set by `resync --force`: upload even if an object for this version exists. */
  force?: boolean;
  /** Set by resync, to group the jobs of one batch for progress reporting. */
  batch?: string;
  /**
   * Set by resync on a recording parked for a missing manifest row (`requireManifest`): it goes on
   * with the metadata that is known instead of waiting for a row.
   */
  released?: boolean;
  /**
   * Set by the poll when a listing of the tenant's keys found no object under this one: the job's
   * first run skips the HEAD of invariant 2 (nothing else writes this version's key meanwhile; a
   * retry or a resumed job does the HEAD).
   */
  absent?: boolean;
}

/** One file of a group sync job: its version, and whether the poll found no object for it. */
export interface GroupMember {
  path: string;
  size: number;
  mtime: string;
  absent?: boolean;
}

/**
 * Data of a group sync job: small files of one tenant synced one after the other on one session, each
 * its own version with its own sync state (queue/group.ts). `pickup` is the BullMQ pickup
 * (`attemptsStarted`) on which none of `files` has been tried yet: set when the group goes back to the
 * queue for want of a slot, so its files still count as first runs then (and not after a crash).
 */
export interface GroupJobData {
  org: string;
  files: GroupMember[];
  pickup?: number;
  /** Files that ended in earlier pickups (the group went back to the queue after them). */
  ended?: { synced: number; spunOff: number };
}

/** What a sync queue job carries: one version, or a group of small ones. */
export type SyncQueueData = SyncJobData | GroupJobData;

/**
 * What a group sync job answers, over all its pickups: files that ended in it (`synced`: uploaded,
 * found in S3 or already synced, or superseded; `uploaded` of them with bytes sent) and files that
 * went on as jobs of their own (`spunOff`).
 */
export interface GroupResult {
  outcome: 'group';
  synced: number;
  uploaded: number;
  bytes: number;
  spunOff: number;
}

export const isGroup = (d: SyncQueueData): d is GroupJobData => 'files' in d;

/** Data of a poll job. */
export interface PollJobData {
  org: string;
}

/** Result of a sync job, stored by BullMQ on completion. */
export interface SyncResult {
  outcome: 'uploaded' | 'already-in-s3' | 'already-synced' | 'superseded';
  key: string;
  bytes: number;
}
