/**
 * The contract of a sync job (sync/sync-job.ts) with what it runs on and what it answers: its
 * dependencies (ports and hooks), its context and its outcomes. Apart from the job itself so that
 * its steps (sync/job-steps.ts) and the queue's worker read the same types without a circle.
 */
import type { TenantConfig } from '../config.js';
import type { TenantError } from '../errors.js';
import type { Logger } from '../log.js';
import type { BandwidthLimiter } from '../ports/bandwidth.js';
import type { ObjectStore } from '../ports/object-store.js';
import type { IndexedRow, SyncStateStore } from '../ports/sync-state.js';
import type { TenantDirectory } from '../ports/tenants.js';
import type { ParkedRecord, SyncJobData, SyncResult } from '../types.js';
import type { AfterSync } from './after-sync.js';
import type { SessionPool } from './pool.js';

/** What the call check decided for one file before its upload. */
export type CallDecision =
  | { kind: 'upload'; metadata: Record<string, string> }
  /** Not yet (a manifest row may still come): try again later, not parked, not an attempt. */
  | { kind: 'wait'; retryInMs: number; detail: string }
  | {
      kind: 'park';
      reason: ParkedRecord['reason'];
      detail: string;
      retryInMs: number;
      /**
       * Asked again after the parked record is written: true when what was missing arrived in the
       * meantime (a manifest indexed while we parked), so the job runs again at once instead.
       */
      recheck?: () => Promise<boolean>;
    };

/** Metadata and allocation check for one file (issue: tenants). Absent → upload with no call metadata. */
export interface CallCheck {
  (
    tenant: TenantConfig,
    job: SyncJobData,
    ctx: {
      signal?: AbortSignal;
      log: Logger;
      queuedAt: number;
      /** The row looked up for `manifestRefs(job)` with the job's first look (null: none). */
      manifestRow?: IndexedRow | null;
    },
  ): Promise<CallDecision>;
  /** The manifest references the check will look up for this job: fetched in the same round trip. */
  manifestRefs?(job: SyncJobData): string[];
}

/**
 * Runs after a file is in S3 and marked synced (manifests are indexed here; a recording that went
 * up without a manifest row looks for one that came meanwhile). `metadata` is the object's metadata
 * as uploaded; `body` the file when it was buffered (else read from S3). A throw is transient: the
 * job is retried, finds the version synced, and runs the step again if it is still owed (a call
 * record still pending). `ctx.manifestRow`, when given, is the row of the job's manifest refs read
 * right after the sync-state write (null: none), so the step need not look it up again.
 */
export type AfterUpload = (
  tenant: TenantConfig,
  job: SyncJobData,
  key: string,
  body: Buffer | undefined,
  metadata: Record<string, string>,
  ctx?: { manifestRow?: IndexedRow | null },
) => Promise<void>;

export interface SyncJobDeps {
  tenants: TenantDirectory;
  state: SyncStateStore;
  store: ObjectStore;
  pool: SessionPool;
  keyTemplate: string;
  multipartThreshold: number;
  callCheck?: CallCheck;
  afterUpload?: AfterUpload;
  /** The tenant's after-sync action (delete/move the source file once safe): sync/after-sync.ts. */
  afterSync?: AfterSync;
  /** Where tenants' `maxBandwidth` budgets are kept (shared by replicas). */
  bandwidth?: BandwidthLimiter;
  /** A transfer resumed an upload an earlier attempt left: `bytes` were not read again (metrics). */
  onResumed?: (org: string, bytes: number) => void;
  log: Logger;
}

export type SyncOutcome =
  | { kind: 'done'; result: SyncResult }
  /**
   * The tenant's connection budget is used up, or its logins are paused after 421s (for
   * `retryInMs`): try again then, not counted as an attempt.
   */
  | { kind: 'no-slot'; retryInMs?: number }
  /** Waiting for something that may still come (a manifest row): try again in `retryInMs`. */
  | { kind: 'wait'; retryInMs: number; detail: string }
  /** `tenantError`: this job itself hit the tenant-level failure it is parked for. */
  | { kind: 'parked'; record: ParkedRecord; retryInMs: number; tenantError?: TenantError }
  /** The listed version no longer exists on the server; a newer one has its own job. */
  | { kind: 'superseded'; detail: string };

export interface SyncJobContext {
  jobId: string;
  /** Attempts already made (0 on the first run). */
  attempt: number;
  /** This is the job's first run: never tried, delayed, parked or stalled before. */
  firstRun?: boolean;
  /** When the job was queued (ms). */
  queuedAt: number;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
}
