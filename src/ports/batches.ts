/**
 * The batch port: what is known of each zip batch (its state, counts, and each entry's outcome) and
 * the tenant's content index (which bytes an earlier batch already put in S3, so the same recording
 * in a second archive is reported as a duplicate instead of uploaded twice). The Redis adapter
 * (`adapters/redis-batches.ts`) and an in-memory fake (tests) implement it.
 */

export type BatchState = 'queued' | 'running' | 'parked' | 'done' | 'failed';

/** What became of one entry. */
export type EntryOutcome = 'synced' | 'duplicate' | 'parked' | 'rejected' | 'ignored';

export const ENTRY_OUTCOMES: readonly EntryOutcome[] = [
  'synced',
  'duplicate',
  'parked',
  'rejected',
  'ignored',
];

export interface EntryRecord {
  index: number;
  name: string;
  outcome: EntryOutcome;
  /** Why (rejected: a short reason code such as `zip-bomb`; parked: `allocation-exceeded`, …). */
  reason?: string;
  detail?: string;
  /** The object it became (synced) or duplicates (duplicate). */
  key?: string;
  bytes?: number;
}

export interface BatchRecord {
  id: string;
  org: string;
  /** The archive's S3 key. */
  key: string;
  /** The archive's path, under which its entries' paths (and keys) are made: `<path>/<entry name>`. */
  path: string;
  size: number;
  /** Where the archive came from. */
  via: 'source' | 'cli' | 'api';
  state: BatchState;
  /** Why the batch failed as a whole (not a zip, truncated, over a limit). */
  reason?: string;
  /** Entries in the central directory. */
  entries: number;
  counts: Record<EntryOutcome, number>;
  /** Ranged GETs made by the last run. */
  rangeGets?: number;
  createdAt: number;
  updatedAt: number;
}

/** A content fingerprint: size and CRC-32 from the central directory, confirmed by SHA-256. */
export interface ContentRecord {
  key: string;
  path: string;
  sha256: string;
}

export interface BatchStore {
  /** Creates or replaces a batch's record. */
  save(rec: BatchRecord): Promise<void>;
  get(id: string): Promise<BatchRecord | undefined>;
  /** Newest first; only the tenant's when `org` is given. */
  list(org?: string): Promise<BatchRecord[]>;
  setEntry(id: string, entry: EntryRecord): Promise<void>;
  /** Every entry outcome recorded so far, by central-directory order. */
  entries(id: string): Promise<EntryRecord[]>;
  findContent(org: string, fingerprint: string): Promise<ContentRecord | undefined>;
  recordContent(org: string, fingerprint: string, rec: ContentRecord): Promise<void>;
}
