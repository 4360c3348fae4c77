/**
 * The sync state port: which version of each path is in S3, the versions seen but not yet stable,
 * parked files, tenant health and counters, the call-record index (manifest rows) and the call
 * records still pending. The domain (`sync/`) talks to it only through this interface; the Redis
 * adapter (`adapters/redis-state.ts`) and an in-memory fake (tests) implement it.
 */
import type { MetadataSource, ParkedRecord, SyncRecord } from '../types.js';

/** A version seen on a poll but not yet stable. */
export interface SeenRecord {
  size: number;
  mtime: string;
  /** When we first saw this exact version (our clock, ms). */
  firstSeen: number;
}

export interface TenantInfo {
  health: 'ok' | 'unhealthy' | 'unknown';
  reason?: string;
  since?: number;
  lastPollAt?: number;
  lastPollMs?: number;
  lastPollFiles?: number;
  files: number;
  bytes: number;
  lastError?: string;
  lastErrorAt?: number;
  /** Polls failed in a row with a tenant-level error, and when the last one did (shared backoff). */
  pollFailures: number;
  lastFailureAt?: number;
  /** Recordings synced, by where their call metadata came from. */
  bySource: Record<MetadataSource, number>;
}

/** What status shows of a manifest's validation report. */
export interface ReportSummary {
  path: string;
  key: string;
  rows: number;
  accepted: number;
  errorCount: number;
  /** Rows that matched recordings already synced, and how many of those objects were updated. */
  matchedSynced?: number;
  updated?: number;
  at: number;
}

/** A manifest row as indexed (same shape as the parser's ManifestRow). */
export interface IndexedRow {
  email: string;
  dateOfCall: string;
  line: number;
  file: string;
  manifest: string;
}

export interface SyncStateStore {
  /** Looks up sync state and seen records for many paths in one round trip. */
  lookup(
    org: string,
    paths: string[],
  ): Promise<{ synced: (SyncRecord | undefined)[]; seen: (SeenRecord | undefined)[] }>;
  /** Replaces the set of seen-but-unstable versions of a tenant (one transaction). */
  replaceSeen(org: string, seen: Map<string, SeenRecord>): Promise<void>;
  getSynced(org: string, path: string): Promise<SyncRecord | undefined>;
  /**
   * A sync job's first look, in one round trip: the path's sync record, the tenant's health, the
   * manifest row of the first of `manifestRefs` that has one, how many other call records are pending
   * (listed since `pendingSince`, not yet indexed) and whether the path itself is one.
   */
  jobCheck(
    org: string,
    path: string,
    opts?: { manifestRefs?: string[]; pendingSince?: number; version?: Version },
  ): Promise<{
    synced?: SyncRecord;
    unhealthy?: string;
    manifestRow?: IndexedRow | null;
    pendingManifests: number;
    selfPending: boolean;
  }>;
  /**
   * Marks a version synced, unparks it and counts it, atomically; `source` (recordings) counts it by
   * where its call metadata came from. With `manifestRefs`, also reads the manifest row of the first
   * ref that has one, after the write and in the same round trip (null: none): what `findManifestRow`
   * would answer just after.
   */
  markSynced(
    org: string,
    path: string,
    rec: SyncRecord,
    source?: MetadataSource,
    opts?: { manifestRefs?: string[] },
  ): Promise<{ manifestRow?: IndexedRow | null }>;
  /** Moves one synced recording from one metadata-source count to another (metadata updated in place). */
  recountSource(org: string, from: MetadataSource | undefined, to: MetadataSource): Promise<void>;
  /**
   * Records the call records of a listing that are not yet indexed (`pending`, first-listed `now`
   * unless already pending) and forgets pending ones no longer listed (`listed`: every call record
   * of the listing). Called by the poll before it adds the listing's jobs: manifest first.
   */
  notePendingManifests(org: string, pending: Version[], listed: Version[], now: number): Promise<void>;
  /** A call record was indexed (or never will be): recordings need not wait for it. */
  manifestSettled(org: string, version: Version): Promise<void>;
  /** Every synced path of a tenant (for status and resync). */
  allSynced(org: string): Promise<Map<string, SyncRecord>>;
  forgetSynced(org: string, paths: string[]): Promise<void>;
  park(org: string, rec: ParkedRecord): Promise<void>;
  unpark(org: string, path: string): Promise<void>;
  parked(org: string): Promise<ParkedRecord[]>;
  /** How many files of the tenant are parked (cheap: for metrics). */
  parkedCount(org: string): Promise<number>;
  info(org: string): Promise<TenantInfo>;
  /**
   * Marks the tenant healthy (a poll or login succeeded: the series of failed polls ends) or
   * unhealthy with the reason (`poll: true` counts a failed poll for the backoff). Returns the health
   * it had before.
   */
  setHealth(
    org: string,
    health: 'ok' | 'unhealthy',
    reason?: string,
    opts?: { poll?: boolean },
  ): Promise<TenantInfo['health']>;
  recordPoll(org: string, p: { at: number; ms: number; files: number }): Promise<void>;
  recordError(org: string, message: string): Promise<void>;
  /** Stores the usable rows of a manifest under their recording references. */
  indexManifest(org: string, rows: ReadonlyMap<string, IndexedRow>): Promise<void>;
  /** The first row found among `refs` (most specific first). */
  findManifestRow(org: string, refs: string[]): Promise<IndexedRow | undefined>;
  recordReport(org: string, summary: ReportSummary): Promise<void>;
  reports(org: string): Promise<ReportSummary[]>;
  getParked(org: string, path: string): Promise<ParkedRecord | undefined>;
  /** What the last completed poll found wrong without failing (missing directories, unsyncable names). */
  recordPollNotes(org: string, notes: PollNotes): Promise<void>;
  pollNotes(org: string): Promise<PollNotes>;
  /** Removes every state key of a tenant. */
  clear(org: string): Promise<void>;
  /**
   * Moves a tenant's state written in an older layout into the current one (the daemon runs it for
   * every tenant on start); records already in the current layout win. Returns how many it moved.
   */
  migrate(org: string): Promise<number>;
}

/** A file version as the pending-manifest marks name it. */
export type Version = { path: string; size: number; mtime: string };

export interface PollNotes {
  /** Configured directories the last poll did not find (the others were listed). */
  missingDirs: string[];
  /** Names the last poll listed that cannot be synced, and up to a few of them (JSON-quoted). */
  unsyncable: { count: number; sample: string[] };
}
