/**
 * What makes ftp-sync Vela's upload path: every recording gets call metadata (manifest row →
 * filename pattern → defaults) and passes Vela's minute-allocation check before its upload; every
 * call-record file is indexed as a manifest after its upload, with a validation report of bad rows.
 */
import { Readable } from 'node:stream';
import type { SyncStateStore } from '../adapters/redis-state.js';
import { PermanentError, toError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AllocationCheck } from '../ports/allocation.js';
import type { ObjectStore } from '../ports/object-store.js';
import { parseManifest } from './metadata/manifest.js';
import { buildValidationReport, type ValidationReport, validationReportKey } from './metadata/report.js';
import {
  findManifestRow,
  isCallRecord,
  isRecording,
  manifestKeys,
  resolveCallMetadata,
} from './metadata/resolve.js';
import type { ManifestResult } from './metadata/types.js';
import type { AfterUpload, CallGate } from './sync-job.js';

const MONTHS = 'jan feb mar apr may jun jul aug sep oct nov dec'.split(' ');

/**
 * Best-effort date of a listing time, for the "file's mtime date" default: exact ISO times, unix
 * LIST (`Nov 23 18:42` — this year unless that is in the future — or `Nov 23  2026`) and DOS
 * (`11-23-26 06:42PM`).
 */
export function listingDate(mtime: string, now = new Date()): Date | undefined {
  const iso = Date.parse(mtime);
  if (/^\d{4}-\d{2}-\d{2}T/.test(mtime) && Number.isFinite(iso)) return new Date(iso);
  const unix = /^([A-Za-z]{3})\s+(\d{1,2})\s+(?:(\d{1,2}):(\d{2})|(\d{4}))$/.exec(mtime.trim());
  if (unix) {
    const month = MONTHS.indexOf(unix[1]!.toLowerCase());
    if (month < 0) return undefined;
    const day = Number(unix[2]);
    if (unix[5]) return new Date(Date.UTC(Number(unix[5]), month, day));
    let year = now.getUTCFullYear();
    if (Date.UTC(year, month, day) > now.getTime() + 86_400_000) year--;
    return new Date(Date.UTC(year, month, day, Number(unix[3]), Number(unix[4])));
  }
  const dos = /^(\d{2})-(\d{2})-(\d{2,4})\s/.exec(mtime.trim());
  if (dos) {
    const y = Number(dos[3]);
    return new Date(Date.UTC(y < 100 ? 2000 + y : y, Number(dos[1]) - 1, Number(dos[2])));
  }
  return undefined;
}

export interface CallGateDeps {
  state: SyncStateStore;
  /** Absent when `vela.enabled: false`. */
  allocation?: AllocationCheck;
  allocationRecheckMs: number;
  now?: () => number;
}

export function makeCallGate(deps: CallGateDeps): CallGate {
  const now = deps.now ?? Date.now;
  const gate: CallGate = async (tenant, job, ctx) => {
    if (!isRecording(job.path)) return { kind: 'upload', metadata: {} };
    const row =
      ctx.manifestRow !== undefined
        ? (ctx.manifestRow ?? undefined)
        : await deps.state.findManifestRow(tenant.org, manifestKeys(job.path));
    const res = resolveCallMetadata({
      path: job.path,
      mtime: listingDate(job.mtime, new Date(now())),
      manifestRow: row,
      config: tenant.metadata,
    });
    if (!res.ok) {
      const waited = now() - ctx.queuedAt;
      // The manifest indexer writes rows, then reads parked records; we write the parked record, then
      // read rows again: one of the two always sees the other.
      const recheck = async () =>
        (await deps.state.findManifestRow(tenant.org, manifestKeys(job.path))) !== undefined;
      if (tenant.metadata.requireManifest && waited < tenant.metadata.manifestWait) {
        // Held (and visible) while the manifest may still come; its arrival releases the job at once.
        const until = new Date(ctx.queuedAt + tenant.metadata.manifestWait).toISOString();
        return {
          kind: 'park',
          reason: 'missing-metadata',
          detail: `${res.detail} (until ${until})`,
          retryInMs: Math.min(60_000, tenant.metadata.manifestWait - waited),
          recheck,
        };
      }
      // Without Vela, call metadata is best effort: nothing needs it before the upload.
      if (!deps.allocation && !tenant.metadata.requireManifest) return { kind: 'upload', metadata: {} };
      return {
        kind: 'park',
        reason: 'missing-metadata',
        detail: res.detail,
        retryInMs: deps.allocationRecheckMs,
      };
    }
    const { email, dateOfCall, source } = res.metadata;
    const metadata: Record<string, string> = { email, 'date-of-call': dateOfCall, 'metadata-source': source };
    if (!deps.allocation) return { kind: 'upload', metadata };
    const answer = await deps.allocation.check({ org: tenant.org, email, dateOfCall }, ctx.signal);
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
  gate.manifestRefs = (job) => (isRecording(job.path) ? manifestKeys(job.path) : []);
  return gate;
}

export interface ManifestIndexerDeps {
  state: SyncStateStore;
  store: ObjectStore;
  /** Lets parked or waiting jobs run now (recordings whose manifest row just arrived). */
  release: (org: string, jobIds: string[]) => Promise<void>;
  log: Logger;
}

/** After a call-record file is in S3: index its rows, write its validation report, release waiters. */
export function makeManifestIndexer(deps: ManifestIndexerDeps): AfterUpload {
  return async (tenant, job, key, body) => {
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
    if (result?.rows.size) await deps.state.indexManifest(tenant.org, result.rows);
    if (report.errorCount > 0) {
      const json = Buffer.from(`${JSON.stringify(report, null, 2)}\n`);
      await deps.store.put(validationReportKey(key), json, {
        size: json.length,
        metadata: { org: tenant.org, 'source-path': job.path, 'report-of': key },
        contentType: 'application/json',
      });
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
      at: Date.now(),
    });
    log.info({ rows: report.rows, accepted: report.accepted }, 'manifest indexed');
    if (result?.rows.size) {
      const waiting = (await deps.state.parked(tenant.org)).filter(
        (p) => p.reason === 'missing-metadata' && findManifestRow(result.rows, p.path),
      );
      if (waiting.length)
        await deps.release(
          tenant.org,
          waiting.map((p) => p.jobId),
        );
    }
  };
}
