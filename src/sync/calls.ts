/**
 * What makes ftp-sync Vela's upload path: every recording gets what is known of its call metadata
 * (manifest row → filename pattern → defaults; optional, as in the platform's API) and passes Vela's
 * minute-allocation check before its upload; every call-record file is indexed as a manifest after
 * its upload, with a validation report, and its rows update recordings already synced in place.
 *
 * Manifest first: a poll records the call records it lists that are not yet indexed before it adds
 * that listing's jobs (`notePendingManifests`), and a recording with no manifest row waits while any
 * is pending (at most `manifestWait`). So a call record dropped with its recordings reaches them
 * whatever the job order, the concurrency or the number of replicas: the marker is in Redis before
 * any of the recordings' jobs exist. A row may name a recording by file name alone, which matches in
 * any directory, so the wait is per tenant, not per directory. A call record that comes after its
 * recordings were synced updates their objects' metadata in place (same key, no new upload).
 */
import { Readable } from 'node:stream';
import { PermanentError, toError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AllocationCheck } from '../ports/allocation.js';
import type { ObjectStore } from '../ports/object-store.js';
import type { SyncStateStore } from '../ports/sync-state.js';
import type { MetadataSource } from '../types.js';
import type { AfterUpload, CallCheck } from './job-types.js';
import { listingDate } from './listing-time.js';
import { parseManifest } from './metadata/manifest.js';
import { buildValidationReport, type ValidationReport, validationReportKey } from './metadata/report.js';
import {
  findManifestRow,
  isCallRecord,
  isRecording,
  manifestKeys,
  resolveCallMetadata,
} from './metadata/resolve.js';
import type { ManifestResult, ManifestRow } from './metadata/types.js';

export interface CallCheckDeps {
  state: SyncStateStore;
  /** Absent when `vela.enabled: false`. */
  allocation?: AllocationCheck;
  allocationRecheckMs: number;
  now?: () => number;
}

export function makeCallCheck(deps: CallCheckDeps): CallCheck {
  const now = deps.now ?? Date.now;
  const check: CallCheck = async (tenant, job, ctx) => {
    if (!isRecording(job.path)) return { kind: 'upload', metadata: {} };
    const row =
      ctx.manifestRow !== undefined
        ? (ctx.manifestRow ?? undefined)
        : await deps.state.findManifestRow(tenant.org, manifestKeys(job.path));
    const res = resolveCallMetadata({
      path: job.path,
      mtime: listingDate(job.mtime, new Date(now())),
      manifestRow: row,
      // `resync` released it from a requireManifest hold: go on with what is known.
      config: job.released ? { ...tenant.metadata, requireManifest: false } : tenant.metadata,
    });
    if (!res.ok) {
      // Only `requireManifest` gets here: held, visibly, until a row comes.
      const waited = now() - ctx.queuedAt;
      // The manifest indexer writes rows, then reads parked records; we write the parked record, then
      // read rows again: one of the two always sees the other.
      const recheck = async () =>
        (await deps.state.findManifestRow(tenant.org, manifestKeys(job.path))) !== undefined;
      const within = waited < tenant.metadata.manifestWait;
      const until = new Date(ctx.queuedAt + tenant.metadata.manifestWait).toISOString();
      return {
        kind: 'park',
        reason: 'missing-metadata',
        detail: within
          ? `${res.detail} (requireManifest: held until ${until})`
          : `no manifest row after metadata.manifestWait (requireManifest); resync releases it`,
        retryInMs: within
          ? Math.min(60_000, tenant.metadata.manifestWait - waited)
          : deps.allocationRecheckMs,
        recheck,
      };
    }
    if (res.warning) ctx.log.warn({ detail: res.warning }, 'call metadata: pattern value ignored');
    const { email, dateOfCall, source } = res.metadata;
    const metadata: Record<string, string> = {
      ...(email !== undefined && { email }),
      ...(dateOfCall !== undefined && { 'date-of-call': dateOfCall }),
      'metadata-source': source,
    };
    if (!deps.allocation) return { kind: 'upload', metadata };
    // Vela receives org_id and only the fields that are known (see velaBody).
    const answer = await deps.allocation.check(
      {
        org: tenant.org,
        ...(email !== undefined && { email }),
        ...(dateOfCall !== undefined && { dateOfCall }),
      },
      ctx.signal,
    );
    if (answer.allocation === 'exceeded') {
      const left = answer.remainingMinutes !== undefined ? ` (${answer.remainingMinutes} minutes left)` : '';
      return {
        kind: 'park',
        reason: 'allocation-exceeded',
        detail: `Vela: minute allocation exceeded${left}`,
        retryInMs: deps.allocationRecheckMs,
      };
    }
    return { kind: 'upload', metadata: { ...metadata, 'voice-id': answer.voiceId } };
  };
  check.manifestRefs = (job) => (isRecording(job.path) ? manifestKeys(job.path) : []);
  return check;
}

export interface ManifestIndexerDeps {
  state: SyncStateStore;
  store: ObjectStore;
  /** Lets parked or waiting jobs run now (recordings whose manifest row just arrived). */
  release: (org: string, jobIds: string[]) => Promise<void>;
  /** Side channel: a synced recording's metadata was updated in place by a later call record. */
  onMetadataUpdate?: (org: string) => void;
  log: Logger;
}

/** The metadata a manifest row gives a recording's object. */
function rowMetadata(row: Pick<ManifestRow, 'email' | 'dateOfCall'>): Record<string, string> {
  return { email: row.email, 'date-of-call': row.dateOfCall, 'metadata-source': 'manifest' };
}

/**
 * Gives a synced recording's object the metadata of a manifest row, in place (same key, a copy onto
 * itself with replaced metadata, no new upload). Vela is not asked again: the call was checked
 * before its upload. Returns whether the object changed.
 */
async function applyRowInPlace(
  deps: ManifestIndexerDeps,
  org: string,
  path: string,
  key: string,
  row: Pick<ManifestRow, 'email' | 'dateOfCall'>,
  log: Logger,
): Promise<boolean> {
  const head = await deps.store.head(key);
  if (!head) return false;
  const want = rowMetadata(row);
  if (Object.entries(want).every(([k, v]) => head.metadata[k] === v)) return false;
  const before = head.metadata['metadata-source'] as MetadataSource | undefined;
  await deps.store.replaceMetadata(key, { ...head.metadata, ...want }, head.contentType);
  await deps.state.recountSource(org, before, 'manifest');
  log.info(
    { path, key, email: row.email, dateOfCall: row.dateOfCall, was: before ?? 'unknown' },
    'call metadata updated in place',
  );
  safe(() => deps.onMetadataUpdate?.(org));
  return true;
}

/**
 * After a file is in S3: a call record is indexed (rows stored, validation report written, waiting
 * recordings released, recordings already synced updated in place, its pending mark cleared); a
 * recording uploaded without a manifest row takes one that was indexed while it was on its way (the
 * indexer writes rows, then reads sync state; the job writes sync state, then reads rows: one of the
 * two sees the other).
 */
export function makeManifestIndexer(deps: ManifestIndexerDeps): AfterUpload {
  return async (tenant, job, key, body, metadata, ctx) => {
    if (isRecording(job.path)) {
      if (metadata['metadata-source'] === 'manifest') return;
      // Read by the sync-state write's own script when the job passed the refs (one round trip less).
      const row =
        ctx?.manifestRow !== undefined
          ? (ctx.manifestRow ?? undefined)
          : await deps.state.findManifestRow(tenant.org, manifestKeys(job.path));
      if (row)
        await applyRowInPlace(deps, tenant.org, job.path, key, row, deps.log.child({ org: tenant.org }));
      return;
    }
    if (!isCallRecord(job.path)) return;
    const log = deps.log.child({ org: tenant.org, manifest: job.path });
    const input = body ? Readable.from([body]) : await deps.store.get(key);
    let report: ValidationReport;
    let result: ManifestResult | undefined;
    try {
      result = await parseManifest(input, { fileName: job.path, config: tenant.metadata });
      report = buildValidationReport(job.path, result);
    } catch (e) {
      const err = toError(e);
      if (!(err instanceof PermanentError)) throw err;
      report = {
        file: job.path,
        rows: 0,
        accepted: 0,
        errorCount: 1,
        errors: [{ line: 0, message: err.message }],
        complete: false,
        generatedAt: new Date().toISOString(),
      };
    }
    const rows = result?.rows;
    if (rows?.size) await deps.state.indexManifest(tenant.org, rows);
    // Recordings synced before this call record came: their objects take its rows in place.
    const matched: NonNullable<ValidationReport['matchedSynced']> = [];
    if (rows?.size) {
      for (const [path, rec] of await deps.state.allSynced(tenant.org)) {
        if (!isRecording(path)) continue;
        const row = findManifestRow(rows, path);
        if (!row) continue;
        const updated = await applyRowInPlace(deps, tenant.org, path, rec.key, row, log);
        matched.push({ line: row.line, path, key: rec.key, updated });
      }
    }
    if (matched.length)
      report.matchedSynced = matched.sort((x, y) => x.line - y.line || x.path.localeCompare(y.path));
    if (report.errorCount > 0 || matched.length) {
      const json = Buffer.from(`${JSON.stringify(report, null, 2)}\n`);
      await deps.store.put(validationReportKey(key), json, {
        size: json.length,
        metadata: { org: tenant.org, 'source-path': job.path, 'report-of': key },
        contentType: 'application/json',
      });
    }
    if (report.errorCount > 0) {
      log.warn(
        { rows: report.rows, errors: report.errorCount, first: report.errors[0] },
        'manifest rows rejected',
      );
    }
    await deps.state.recordReport(tenant.org, {
      path: job.path,
      key,
      rows: report.rows,
      accepted: report.accepted,
      errorCount: report.errorCount,
      matchedSynced: matched.length,
      updated: matched.filter((m) => m.updated).length,
      at: Date.now(),
    });
    log.info(
      {
        rows: report.rows,
        accepted: report.accepted,
        updatedInPlace: matched.filter((m) => m.updated).length,
      },
      'manifest indexed',
    );
    // Recordings may go on now: this call record's rows are where they will look.
    await deps.state.manifestSettled(tenant.org, job);
    if (rows?.size) {
      const waiting = (await deps.state.parked(tenant.org)).filter(
        (p) => p.reason === 'missing-metadata' && findManifestRow(rows, p.path),
      );
      if (waiting.length)
        await deps.release(
          tenant.org,
          waiting.map((p) => p.jobId),
        );
    }
  };
}

function safe(fn: () => void) {
  try {
    fn();
  } catch {
    /* a side channel never breaks a job */
  }
}
