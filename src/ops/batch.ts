/**
 * Zip batches, for every way in: an archive synced from a tenant's source (the worker), an archive
 * imported by an operator (`ftp-sync batch import`), an archive uploaded through the upload API.
 * Each lands in S3 first; `enqueueBatch` then queues its expansion (one job per archive version).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { PermanentError } from '../errors.js';
import type { ArchiveIntake } from '../ports/api.js';
import type { BatchRecord, EntryRecord } from '../ports/batches.js';
import { addBatchJob, batchId } from '../queue/batch-jobs.js';
import type { Root } from '../root.js';
import type { BatchJobData } from '../sync/batch/expand.js';
import { objectKey, tenantPrefix } from '../sync/key.js';

/** Attempts of a batch job (a failed S3 or Redis request); each run resumes where the last stopped. */
const BATCH_ATTEMPTS = 20;

export interface EnqueueBatchInput {
  org: string;
  /** The archive's S3 key (in the configured bucket, under the tenant's prefix). */
  key: string;
  /** The archive's path (entries go to `<path>/<entry name>`); default: the key without the tenant's prefix. */
  path?: string;
  via?: BatchRecord['via'];
}

/**
 * Queues the expansion of an archive already in S3. Idempotent: the batch id is made of the tenant,
 * the key and the object's ETag, so the same archive is one batch however often it is enqueued.
 * This is the function the upload API calls once a client's zip has arrived.
 */
/** Where a zip uploaded through the upload API goes: queued for expansion as a batch. */
export function archiveIntake(root: Root): ArchiveIntake {
  return {
    async onArchiveUploaded(a) {
      const batch = await enqueueBatch(root, { org: a.org, key: a.key, path: a.path, via: 'api' });
      root.log.info({ org: a.org, key: a.key, batch: batch.id }, 'upload api: archive queued for expansion');
    },
  };
}

export async function enqueueBatch(root: Root, input: EnqueueBatchInput): Promise<BatchRecord> {
  const tenant = await root.callTenants().get(input.org);
  if (!tenant) throw new PermanentError(`tenant "${input.org}" is not configured`);
  const prefix = tenantPrefix(root.config.s3.keyTemplate, input.org);
  if (!input.key.startsWith(prefix)) {
    throw new PermanentError(
      `the archive key ${JSON.stringify(input.key)} is not under the tenant's prefix ${prefix}`,
    );
  }
  const head = await root.store().head(input.key);
  if (!head) throw new PermanentError(`no object ${input.key} in the bucket`);
  const id = batchId(input.org, input.key, head.etag ?? String(head.size));
  const existing = await root.batches().get(id);
  const record: BatchRecord = existing ?? {
    id,
    org: input.org,
    key: input.key,
    path: input.path ?? input.key.slice(prefix.length),
    size: head.size,
    via: input.via ?? 'api',
    state: 'queued',
    entries: 0,
    counts: { synced: 0, duplicate: 0, parked: 0, rejected: 0, ignored: 0 },
    createdAt: Date.now(),
    updatedAt: Date.now(),
  };
  if (!existing) await root.batches().save(record);
  const data: BatchJobData = { id, org: record.org, key: record.key, path: record.path, via: record.via };
  await addBatchJob(root.batchQueue(), data, BATCH_ATTEMPTS);
  return record;
}

/**
 * `ftp-sync batch import`: a local archive is uploaded to S3 (under the tenant's prefix, in
 * `batches/`), or an `s3://bucket/key` is used where it is; then its expansion is queued.
 */
export async function importArchive(
  root: Root,
  org: string,
  source: string,
  onProgress?: (sent: number, total: number) => void,
): Promise<BatchRecord> {
  const { bucket, keyTemplate } = root.config.s3;
  if (source.startsWith('s3://')) {
    const [b, ...rest] = source.slice(5).split('/');
    if (b !== bucket) throw new PermanentError(`${source}: not in the configured bucket ${bucket}`);
    return enqueueBatch(root, { org, key: rest.join('/'), via: 'cli' });
  }
  const size = (await stat(source).catch(() => undefined))?.size;
  if (size === undefined) throw new PermanentError(`${source}: no such file`);
  if (!/\.zip$/i.test(source)) throw new PermanentError(`${source}: not a .zip file`);
  const key = objectKey(keyTemplate, org, `batches/${basename(source)}`);
  await root.store().put(key, createReadStream(source), {
    size,
    metadata: { org, 'source-path': `batches/${basename(source)}`, 'source-size': String(size) },
    contentType: 'application/zip',
    onProgress: (n) => onProgress?.(n, size),
  });
  return enqueueBatch(root, { org, key, via: 'cli' });
}

export interface BatchStatus {
  batch: BatchRecord;
  entries?: EntryRecord[];
}

/** One batch with its entries, or every batch (of a tenant) without. */
export async function batchStatus(root: Root, opts: { id?: string; org?: string }): Promise<BatchStatus[]> {
  if (opts.id) {
    const batch = await root.batches().get(opts.id);
    if (!batch) throw new PermanentError(`no batch ${opts.id}`);
    return [{ batch, entries: await root.batches().entries(opts.id) }];
  }
  return (await root.batches().list(opts.org)).map((batch) => ({ batch }));
}
