import type { TenantConfig } from '../../config.js';
import { PermanentError, toError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { BatchRecord, BatchStore, EntryOutcome, EntryRecord } from '../../ports/batches.js';
import { ENTRY_OUTCOMES } from '../../ports/batches.js';
import type { ObjectStore } from '../../ports/object-store.js';
import type { SyncStateStore } from '../../ports/sync-state.js';
import type { TenantDirectory } from '../../ports/tenants.js';
import type { SyncJobData } from '../../types.js';
import type { AfterUpload, CallCheck } from '../job-types.js';
import { objectKey } from '../key.js';
import { type BatchLimits, type EntryDecision, planEntries } from './entries.js';
import { EntryBuffers, hashEntry, readEntry, uploadEntry } from './upload-entry.js';
import { CorruptArchiveError, type OpenedZip, openZip, StoreReadError, type ZipEntryInfo } from './zip.js';

export interface BatchJobData {
  id: string;
  org: string;
  /** The archive's S3 key. */
  key: string;
  /** The archive's path (relative, `/`-separated): its entries become `<path>/<entry name>`. */
  path: string;
  via: BatchRecord['via'];
  /**
   * `resync` released the batch's entries parked for a missing manifest row (`requireManifest`):
   * they go on with what is known, like a released file from a source.
   */
  released?: boolean;
}

export interface BatchDeps {
  tenants: TenantDirectory;
  state: SyncStateStore;
  store: ObjectStore;
  batches: BatchStore;
  keyTemplate: string;
  limits: (tenant: TenantConfig) => BatchLimits;
  callCheck?: CallCheck;
  afterUpload?: AfterUpload;
  /**
   * Entries of one archive expanded at once (default 1). Call records still all go before any
   * recording, and entries with the same bytes one after the other.
   */
  entryConcurrency?: number;
  /** Entries up to this size are read into memory and sent as one PutObject. */
  bufferBytes?: number;
  /** Side channel (metrics): never breaks a batch. */
  onEntry?: (org: string, outcome: EntryOutcome) => void;
  log: Logger;
}

export interface BatchRun {
  record: BatchRecord;
  /** Some recordings were parked (allocation exceeded): run the batch again after the recheck delay. */
  parked: boolean;
  retryInMs?: number;
}

const emptyCounts = (): Record<EntryOutcome, number> =>
  Object.fromEntries(ENTRY_OUTCOMES.map((o) => [o, 0])) as Record<EntryOutcome, number>;

/** The S3 key of a batch's report: next to the archive. */
export const reportKey = (archiveKey: string) => `${archiveKey}.report.json`;

export async function runBatch(deps: BatchDeps, job: BatchJobData): Promise<BatchRun> {
  const log = deps.log.child({ org: job.org, batch: job.id, archive: job.key });
  const tenant = await deps.tenants.get(job.org);
  if (!tenant) throw new PermanentError(`tenant "${job.org}" is not configured (removed?)`);
  const limits = deps.limits(tenant);
  const now = Date.now();
  const previous = await deps.batches.get(job.id);
  const record: BatchRecord = {
    id: job.id,
    org: job.org,
    key: job.key,
    path: job.path,
    size: previous?.size ?? 0,
    via: job.via,
    state: 'running',
    entries: previous?.entries ?? 0,
    counts: emptyCounts(),
    createdAt: previous?.createdAt ?? now,
    updatedAt: now,
  };
  const fail = async (reason: string): Promise<BatchRun> => {
    record.state = 'failed';
    record.reason = reason;
    record.updatedAt = Date.now();
    await deps.batches.save(record);
    await writeReport(deps, record, await deps.batches.entries(job.id));
    log.warn({ reason }, 'batch failed');
    return { record, parked: false };
  };

  const head = await deps.store.head(job.key);
  if (!head) return fail(`the archive ${job.key} is not in S3`);
  record.size = head.size;
  if (head.size > limits.maxArchiveBytes) {
    return fail(`the archive is ${head.size} bytes, more than the limit of ${limits.maxArchiveBytes}`);
  }
  await deps.batches.save(record);

  let zip: OpenedZip;
  try {
    zip = await openZip(deps.store, job.key, head.size, limits);
  } catch (err) {
    if (err instanceof PermanentError) return fail(err.message);
    throw err;
  }
  try {
    record.entries = zip.entries.length;
    if (zip.entries.length === 0) return await fail('empty archive: no entries');
    const plan = planEntries(zip.entries, limits);
    if (plan.refused) return await fail(plan.refused);
    const done = new Map((await deps.batches.entries(job.id)).map((e) => [e.index, e]));
    // Manifest first: call records, then recordings, then the rest (in central-directory order).
    const rank = (d: EntryDecision) => (d.action !== 'expand' ? 2 : d.kind === 'call-record' ? 0 : 1);
    const order = [...plan.decisions].sort((a, b) => rank(a) - rank(b) || a.index - b.index);
    let retryInMs: number | undefined;
    const lanes = deps.entryConcurrency ?? 1;
    const buffers = new EntryBuffers(lanes);
    const settle = async (d: EntryDecision) => {
      const prior = done.get(d.index);
      if (prior && prior.outcome !== 'parked') return;
      const entry = zip.entries[d.index] as ZipEntryInfo;
      let rec: EntryRecord;
      if (d.action === 'ignore') rec = { index: d.index, name: d.name, outcome: 'ignored', detail: d.detail };
      else if (d.action === 'reject')
        rec = { index: d.index, name: d.name, outcome: 'rejected', reason: d.reason, detail: d.detail };
      else {
        const r = await expandEntry(deps, tenant, job, zip, entry, buffers, log);
        rec = r.rec;
        if (r.retryInMs !== undefined) retryInMs = Math.min(retryInMs ?? r.retryInMs, r.retryInMs);
      }
      await deps.batches.setEntry(job.id, rec);
      done.set(d.index, rec);
      safe(() => deps.onEntry?.(job.org, rec.outcome));
    };
    // Call records (all of them) before any recording; within each, several entries at once.
    const phases = [0, 1, 2].map((r) => order.filter((d) => rank(d) === r));
    for (const phase of phases) {
      await inLanes(phase, lanes, (d) => fingerprintOf(zip.entries[d.index]!), settle);
    }
    const entries = [...done.values()].sort((a, b) => a.index - b.index);
    for (const e of entries) record.counts[e.outcome] += 1;
    record.state = record.counts.parked > 0 ? 'parked' : 'done';
    record.rangeGets = zip.stats.gets;
    record.updatedAt = Date.now();
    await deps.batches.save(record);
    await writeReport(deps, record, entries);
    log.info({ ...record.counts, rangeGets: zip.stats.gets }, 'batch expanded');
    return { record, parked: record.state === 'parked', retryInMs };
  } finally {
    zip.close();
  }
}

async function writeReport(deps: BatchDeps, record: BatchRecord, entries: EntryRecord[]) {
  const json = Buffer.from(`${JSON.stringify({ batch: record, entries }, null, 2)}\n`);
  await deps.store.put(reportKey(record.key), json, {
    size: json.length,
    metadata: { org: record.org, 'report-of': record.key },
    contentType: 'application/json',
  });
}

/** Size and CRC-32: what the content index (duplicates) knows an entry's bytes by. */
const fingerprintOf = (entry: ZipEntryInfo) =>
  `${entry.uncompressedSize}:${(entry.crc32 >>> 0).toString(16)}`;

/**
 * Runs `fn` over `items` in order, at most `limit` at once, never two of the same `lane` at once (two
 * entries with the same bytes go one after the other, so the second finds the first in the content
 * index and is a duplicate, as when they are expanded one by one). The first failure stops new work;
 * what is running ends first (nothing is left behind reading the archive), then it is thrown.
 */
export async function inLanes<T>(
  items: T[],
  limit: number,
  lane: (item: T) => string,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const pending = [...items];
  const busy = new Set<string>();
  let failed: { err: unknown } | undefined;
  let running = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (!failed && running < limit) {
        const i = pending.findIndex((x) => !busy.has(lane(x)));
        if (i < 0) break;
        const [item] = pending.splice(i, 1) as [T];
        const l = lane(item);
        busy.add(l);
        running++;
        fn(item)
          .then(
            () => {},
            (err) => {
              failed ??= { err };
            },
          )
          .finally(() => {
            busy.delete(l);
            running--;
            pump();
          });
      }
      if (running === 0 && (failed || pending.length === 0)) resolve();
    };
    pump();
  });
  if (failed) throw failed.err;
}

/** One entry to expand: duplicate? call check, HEAD, upload, sync state, after-upload steps. */
async function expandEntry(
  deps: BatchDeps,
  tenant: TenantConfig,
  job: BatchJobData,
  zip: OpenedZip,
  entry: ZipEntryInfo,
  buffers: EntryBuffers,
  log: Logger,
): Promise<{ rec: EntryRecord; retryInMs?: number }> {
  const base = { index: entry.index, name: entry.name };
  const path = `${job.path}/${entry.name}`;
  let key: string;
  try {
    key = objectKey(deps.keyTemplate, tenant.org, path);
  } catch (err) {
    return { rec: { ...base, outcome: 'rejected', reason: 'unsafe-name', detail: toError(err).message } };
  }
  const version: SyncJobData = {
    org: tenant.org,
    path,
    size: entry.uncompressedSize,
    mtime: entry.modifiedAt.toISOString(),
    ...(job.released && { released: true }),
  };
  const synced = await deps.state.getSynced(tenant.org, path);
  if (synced && synced.size === version.size && synced.mtime === version.mtime) {
    return { rec: { ...base, outcome: 'synced', key: synced.key, bytes: 0, detail: 'already synced' } };
  }
  const fingerprint = fingerprintOf(entry);
  try {
    const seen = await deps.batches.findContent(tenant.org, fingerprint);
    if (seen && seen.path !== path) {
      const sha = await hashEntry(zip, entry);
      if (sha === seen.sha256) {
        return {
          rec: { ...base, outcome: 'duplicate', key: seen.key, detail: `same bytes as ${seen.path}` },
        };
      }
    }

    let metadata: Record<string, string> = {
      org: tenant.org,
      'source-path': path,
      'source-size': String(version.size),
      'source-mtime': version.mtime,
      'batch-archive': job.key,
    };
    if (deps.callCheck) {
      const decision = await deps.callCheck(tenant, version, { log, queuedAt: Date.now() });
      if (decision.kind !== 'upload') {
        const reason = decision.kind === 'park' ? decision.reason : 'waiting';
        await deps.state.park(tenant.org, {
          path,
          jobId: job.id,
          reason: decision.kind === 'park' ? decision.reason : 'missing-metadata',
          detail: decision.detail,
          since: Date.now(),
        });
        return {
          rec: { ...base, outcome: 'parked', reason, detail: decision.detail },
          retryInMs: decision.retryInMs,
        };
      }
      metadata = { ...metadata, ...decision.metadata };
      await deps.state.unpark(tenant.org, path);
    }

    // Invariant 2: an upload whose sync state was not written (a crash in between) is not repeated.
    // The HEAD that tells and the read of the entry go at once (the read is wasted only then).
    const headed = deps.store.head(key);
    const reading = readEntry(zip, entry, buffers, deps.bufferBytes);
    const [head, read] = await Promise.allSettled([headed, reading]);
    if (head.status === 'rejected') throw head.reason;
    const inMemory = read.status === 'fulfilled' ? read.value : undefined;
    let etag: string | undefined;
    let sha256: string;
    let body: Buffer | undefined;
    const there = head.value;
    if (
      there &&
      there.size === version.size &&
      there.metadata['source-size'] === String(version.size) &&
      there.metadata['source-mtime'] === version.mtime
    ) {
      etag = there.etag;
      if (inMemory) buffers.give(inMemory.body);
      sha256 = there.metadata['content-sha256'] ?? inMemory?.sha256 ?? (await hashEntry(zip, entry));
    } else {
      if (read.status === 'rejected') throw read.reason;
      ({ etag, sha256, body } = await uploadEntry(deps.store, zip, entry, key, metadata, inMemory));
    }
    await deps.state.markSynced(
      tenant.org,
      path,
      { size: version.size, mtime: version.mtime, key, etag, syncedAt: Date.now() },
      metadata['metadata-source'] as never,
    );
    await deps.batches.recordContent(tenant.org, fingerprint, { key, path, sha256 });
    await deps.afterUpload?.(tenant, version, key, body, metadata);
    if (body) buffers.give(body);
    return { rec: { ...base, outcome: 'synced', key, bytes: version.size } };
  } catch (err) {
    // A store that failed is transient (the batch is retried and resumes here); the entry's own
    // bytes being wrong (CRC, sizes, bad deflate data, a bad local header) is this entry's end.
    if (err instanceof StoreReadError || !(err instanceof PermanentError)) throw err;
    const reason =
      err instanceof CorruptArchiveError || err.name === 'EntryChecksumError' ? 'corrupt' : 'failed';
    return { rec: { ...base, outcome: 'rejected', reason, detail: err.message } };
  }
}

function safe(fn: () => void) {
  try {
    fn();
  } catch {
    /* a side channel never breaks a batch */
  }
}
