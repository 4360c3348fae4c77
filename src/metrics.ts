/**
 * Every metric of ftp-sync, defined here, in a registry made by `makeMetrics()` (never prom-client's
 * global one), with the default process metrics beside them.
 *
 * Two kinds of values:
 * - **events counted by this process** (sync jobs, polls, Vela calls), through the `record*`
 *   functions that the side channels of the worker, the poller and the Vela adapter call. They never
 *   throw: a side channel must not break a transfer.
 * - **state read at scrape time** (`collect()`): queue job counts, parked files and tenant health
 *   from Redis, FTP sessions open in this process. Queue, parked and health gauges are cluster-wide
 *   (every replica reports the same value: aggregate them with `max`, not `sum`); connections are
 *   per process (`sum` them). A scrape waits at most `scrapeTimeoutMs` for Redis; past that, or when
 *   a read fails, that gauge is left empty and `ftpsync_scrape_errors_total{source}` counts it.
 *
 * Labels carry only `org` (which config validation limits to `[a-z0-9_-]`), queue names and fixed
 * words, never a path, host, user, URL or error message: no secret can reach a label, and the number
 * of series stays bounded by the number of tenants.
 */
import { Counter, collectDefaultMetrics, exponentialBuckets, Gauge, Histogram, Registry } from 'prom-client';
import { type Registers, type ScrapeSources, safe, scrapeGauges } from './metrics-snapshot.js';

/** Outcomes of a sync job that put (or found) the version in S3. */
const SYNCED_OUTCOMES = ['uploaded', 'already-in-s3', 'already-synced', 'superseded'] as const;
/** Why a sync job did not succeed: failed for good, will be retried, or the tenant itself is broken. */
const FAILURE_REASONS = ['failed', 'retry', 'tenant'] as const;

/** What the queue gauge needs of a BullMQ `Queue` (structural: no BullMQ import here). */
export interface MetricsOptions {
  sources?: ScrapeSources;
  /**
   * How long a scrape waits for its Redis reads before answering without them.
   * @defaultValue 2000
   */
  scrapeTimeoutMs?: number;
  /**
   * Default process and Node.js metrics (`process_*`, `nodejs_*`).
   * @defaultValue true
   */
  processMetrics?: boolean;
  /** Told when a scrape-time read failed (for a debug log). */
  onScrapeError?: (source: string, err: Error) => void;
}

/** The outcome a poll reports through the poller's `onPoll`. */
export type PollReport =
  | {
      kind: 'done';
      listed: number;
      ms: number;
      missingDirs?: readonly string[];
      unsyncable?: { count: number };
    }
  | { kind: string };

export interface Metrics {
  readonly registry: Registry;
  /** The `Content-Type` of `render()`'s text. */
  readonly contentType: string;
  /** The Prometheus text exposition of every metric (runs the scrape-time reads). */
  render(): Promise<string>;
  /** A sync job ended (worker `onOutcome`): a synced outcome, `parked`, `failed` or `retry`. */
  recordOutcome(org: string, outcome: string, bytes: number, ms: number): void;
  /** One entry of a zip batch got its outcome (batch worker `onEntry`). */
  recordBatchEntry(org: string, outcome: string): void;
  /** A transfer resumed an upload: `bytes` not read again from the source (sync job `onResumed`). */
  recordResumed(org: string, bytes: number): void;
  /** A tenant-level error (bad login, TLS, missing directory): worker `onTenantError`. */
  recordTenantError(org: string): void;
  /** A poll ended (poller `onPoll`). */
  recordPoll(org: string, outcome: PollReport): void;
  /** One allocation check (Vela adapter `onCall`). */
  recordVelaCall(call: { outcome: string; ms: number }): void;
  /** A synced recording's call metadata was updated in place by a later call record. */
  recordMetadataUpdate(org: string): void;
  /** One attempt of an after-sync action (sync/after-sync.ts `onOutcome`). */
  recordAfterSync(org: string, action: string, outcome: string): void;
  /** One answered upload API request (http/api.ts `onRequest`); `code` is `ok` or the error code. */
  recordApiRequest(r: { route: string; code: string; ms: number }): void;
  /** An upload API event of an org (ops/uploads.ts `onEvent`); a completed upload counts as a synced call. */
  recordApiUpload(org: string, event: string, bytes?: number): void;
}

/** Upload API events (ops/uploads.ts `UploadEvent`); anything else is counted as `other`. */
const API_UPLOAD_EVENTS = new Set([
  'signed',
  'completed',
  'expired',
  'too-large',
  'exceeded',
  'vela-unavailable',
]);
const API_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** How an after-sync attempt ended (sync/after-sync.ts); anything else is counted as `other`. */
const AFTER_SYNC_OUTCOMES = ['done', 'gone', 'changed', 'failed'] as const;

/** Whole job times, from a small file to a few GB over a slow line. */
const TRANSFER_SECONDS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** 1 KiB … 16 GiB, ×4 per bucket. */
const TRANSFER_BYTES = exponentialBuckets(1024, 4, 13);
const POLL_SECONDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const VELA_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const SYNCED = new Set<string>(SYNCED_OUTCOMES);
const POLL_OUTCOMES = new Set(['done', 'failed', 'skipped', 'no-slot']);
const FAILED = new Set<string>(FAILURE_REASONS);
export function makeMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const sync = syncMetrics(registers);
  const polls = pollMetrics(registers);
  const afterSync = afterSyncMetrics(registers);
  const api = apiMetrics(registers, sync);
  const vela = velaMetrics(registers);
  const healthy = scrapeGauges(registers, opts.sources, opts.scrapeTimeoutMs ?? 2000, opts.onScrapeError);
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    recordBatchEntry: sync.recordBatchEntry,
    recordResumed: sync.recordResumed,
    recordOutcome: sync.recordOutcome,
    recordMetadataUpdate: sync.recordMetadataUpdate,
    recordTenantError(org) {
      safe(() => {
        sync.failures.inc({ org, reason: 'tenant' });
        healthy.set({ org }, 0);
      });
    },
    recordPoll(org, outcome) {
      safe(() => {
        polls.record(org, outcome);
        if ('listed' in outcome && outcome.kind === 'done') healthy.set({ org }, 1);
      });
    },
    recordAfterSync: afterSync.record,
    recordVelaCall: vela.record,
    recordApiRequest: api.recordRequest,
    recordApiUpload: api.recordUpload,
  };
}

/** What sync jobs and zip batches put in S3, and what failed. */
function syncMetrics(registers: Registers) {
  const filesSynced = new Counter({
    name: 'ftpsync_files_synced_total',
    help: 'Calls that ended in S3, by outcome: sync jobs (uploaded, already-in-s3, already-synced, superseded) and upload API uploads (api-upload).',
    labelNames: ['org', 'outcome'],
    registers,
  });
  const bytesSynced = new Counter({
    name: 'ftpsync_bytes_synced_total',
    help: 'Bytes uploaded to S3.',
    labelNames: ['org'],
    registers,
  });
  const failures = new Counter({
    name: 'ftpsync_sync_failures_total',
    help: 'Failed sync job attempts: failed (for good), retry (will be retried), tenant (tenant-level error).',
    labelNames: ['org', 'reason'],
    registers,
  });
  const batchEntries = new Counter({
    name: 'ftpsync_batch_entries_total',
    help: 'Entries of zip batches by outcome (synced, duplicate, parked, rejected, ignored).',
    labelNames: ['org', 'outcome'],
    registers,
  });
  const resumedBytes = new Counter({
    name: 'ftpsync_resumed_bytes_total',
    help: 'Bytes not read again from the source because a retried transfer resumed the upload an earlier attempt left (REST / SFTP offset).',
    labelNames: ['org'],
    registers,
  });
  const metadataUpdates = new Counter({
    name: 'ftpsync_metadata_updates_total',
    help: 'Synced recordings whose object metadata a later call record updated in place (no new upload).',
    labelNames: ['org'],
    registers,
  });
  const transferDuration = new Histogram({
    name: 'ftpsync_transfer_duration_seconds',
    help: 'Time of a sync job that uploaded a file (allocation check, FTP download, S3 upload, verify).',
    buckets: TRANSFER_SECONDS,
    registers,
  });
  const transferSize = new Histogram({
    name: 'ftpsync_transfer_size_bytes',
    help: 'Size of each uploaded file.',
    buckets: TRANSFER_BYTES,
    registers,
  });
  return {
    filesSynced,
    bytesSynced,
    failures,
    recordBatchEntry(org: string, outcome: string) {
      safe(() => batchEntries.inc({ org, outcome }));
    },
    recordResumed(org: string, bytes: number) {
      safe(() => resumedBytes.inc({ org }, bytes));
    },
    recordOutcome(org: string, outcome: string, bytes: number, ms: number) {
      safe(() => {
        if (SYNCED.has(outcome)) {
          filesSynced.inc({ org, outcome });
          if (outcome === 'uploaded') {
            bytesSynced.inc({ org }, bytes);
            transferDuration.observe(ms / 1000);
            transferSize.observe(bytes);
          }
        } else if (FAILED.has(outcome)) failures.inc({ org, reason: outcome });
        // `parked` is not counted here: the parked gauge reads how many are parked now.
      });
    },
    recordMetadataUpdate(org: string) {
      safe(() => metadataUpdates.inc({ org }));
    },
  };
}

/** Polls: how they ended, how long they took, what they listed. */
function pollMetrics(registers: Registers) {
  const polls = new Counter({
    name: 'ftpsync_polls_total',
    help: 'Polls by outcome (done, failed, skipped, no-slot).',
    labelNames: ['org', 'outcome'],
    registers,
  });
  const pollDuration = new Histogram({
    name: 'ftpsync_poll_duration_seconds',
    help: 'Time of a completed poll: listing, diff against sync state, enqueue.',
    labelNames: ['org'],
    buckets: POLL_SECONDS,
    registers,
  });
  const listingSize = new Gauge({
    name: 'ftpsync_poll_listing_size',
    help: 'Entries listed by the last completed poll of a tenant.',
    labelNames: ['org'],
    registers,
  });
  const missingDirs = new Gauge({
    name: 'ftpsync_poll_missing_dirs',
    help: 'Configured directories the last completed poll of a tenant did not find (the tenant is degraded).',
    labelNames: ['org'],
    registers,
  });
  const unsyncableNames = new Gauge({
    name: 'ftpsync_poll_unsyncable_names',
    help: 'Names the last completed poll of a tenant listed that cannot be synced (control characters, a newline).',
    labelNames: ['org'],
    registers,
  });
  return {
    /** Throws like prom-client does: the caller wraps it in `safe`. */
    record(org: string, outcome: PollReport) {
      polls.inc({ org, outcome: POLL_OUTCOMES.has(outcome.kind) ? outcome.kind : 'other' });
      if ('listed' in outcome && outcome.kind === 'done') {
        pollDuration.observe({ org }, outcome.ms / 1000);
        listingSize.set({ org }, outcome.listed);
        if ('missingDirs' in outcome) missingDirs.set({ org }, outcome.missingDirs?.length ?? 0);
        if ('unsyncable' in outcome) unsyncableNames.set({ org }, outcome.unsyncable?.count ?? 0);
      }
    },
  };
}

function afterSyncMetrics(registers: Registers) {
  const afterSync = new Counter({
    name: 'ftpsync_after_sync_actions_total',
    help: 'After-sync attempts on source files by action (delete, move) and outcome: done, gone (already not on the server), changed (a new version there: kept), failed (retried with backoff).',
    labelNames: ['org', 'action', 'outcome'],
    registers,
  });
  return {
    record(org: string, action: string, outcome: string) {
      safe(() =>
        afterSync.inc({
          org,
          action: action === 'move' ? 'move' : 'delete',
          outcome: (AFTER_SYNC_OUTCOMES as readonly string[]).includes(outcome) ? outcome : 'other',
        }),
      );
    },
  };
}

/** The upload API: requests answered and uploads by outcome (a completed one counts as a synced call). */
function apiMetrics(
  registers: Registers,
  sync: Pick<ReturnType<typeof syncMetrics>, 'filesSynced' | 'bytesSynced'>,
) {
  const apiRequests = new Counter({
    name: 'ftpsync_api_requests_total',
    help: 'Upload API requests answered, by route (upload, complete) and code (ok or the error code).',
    labelNames: ['route', 'code'],
    registers,
  });
  const apiDuration = new Histogram({
    name: 'ftpsync_api_request_duration_seconds',
    help: 'Time to answer an upload API request (Vela check and signature included), by route.',
    labelNames: ['route'],
    buckets: API_SECONDS,
    registers,
  });
  const apiUploads = new Counter({
    name: 'ftpsync_api_uploads_total',
    help: 'Upload API uploads by outcome: signed, completed (a call), expired (never uploaded), too-large (deleted), exceeded (allocation: nothing signed), vela-unavailable.',
    labelNames: ['org', 'outcome'],
    registers,
  });
  return {
    recordRequest(r: { route: string; code: string; ms: number }) {
      safe(() => {
        apiRequests.inc({ route: r.route, code: r.code });
        apiDuration.observe({ route: r.route }, r.ms / 1000);
      });
    },
    recordUpload(org: string, event: string, bytes?: number) {
      safe(() => {
        apiUploads.inc({ org, outcome: API_UPLOAD_EVENTS.has(event) ? event : 'other' });
        // An uploaded call counts like one synced from FTP.
        if (event === 'completed') {
          sync.filesSynced.inc({ org, outcome: 'api-upload' });
          sync.bytesSynced.inc({ org }, bytes ?? 0);
        }
      });
    },
  };
}

function velaMetrics(registers: Registers) {
  const velaDuration = new Histogram({
    name: 'ftpsync_vela_request_duration_seconds',
    help: 'Time of an allocation check with Vela, by outcome (within, exceeded, unavailable, rejected, invalid, aborted).',
    labelNames: ['outcome'],
    buckets: VELA_SECONDS,
    registers,
  });
  return {
    record(call: { outcome: string; ms: number }) {
      safe(() => velaDuration.observe({ outcome: call.outcome }, call.ms / 1000));
    },
  };
}
