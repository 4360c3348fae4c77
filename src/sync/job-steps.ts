/**
 * Steps of a sync job that read better on their own: the retry's check that the listed version is
 * still there, the HEAD that confirms a multipart upload, and the end of a job whose version is in S3.
 */
import type { TenantConfig } from '../config.js';
import { PermanentError } from '../errors.js';
import type { SourceSession } from '../ports/source.js';
import type { MetadataSource, SyncJobData } from '../types.js';
import { afterIndexing } from './after-sync.js';
import type { SyncJobDeps, SyncOutcome } from './job-types.js';
import { sameVersion } from './plan.js';

const dirname = (p: string) => p.slice(0, Math.max(0, p.lastIndexOf('/')));
const basename = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/**
 * A retry: is the listed version still there? A vanished file fails for good; a changed one is
 * superseded (the newer version has its own job).
 */
export async function supersededOnServer(
  session: SourceSession,
  job: SyncJobData,
): Promise<Extract<SyncOutcome, { kind: 'superseded' }> | undefined> {
  const entry = (await session.list(`/${dirname(job.path)}`)).find((e) => e.name === basename(job.path));
  if (!entry) throw new PermanentError(`${job.path}: no longer on the server`);
  if (sameVersion(entry, job)) return undefined;
  return { kind: 'superseded', detail: `now ${entry.size} bytes, ${entry.mtime}` };
}

/**
 * The end of a job whose version is in S3, uploaded now or found there. The after-sync action is
 * recorded before markSynced (a crash in between cannot lose it; it acts only once the version is
 * marked synced); the version is marked synced (counted by its metadata source); the after-upload
 * steps run when `index` (a call record is indexed: a failure is thrown, the job is retried, finds
 * the version synced with its call record still pending and indexes it then); a call record is
 * cleaned only once indexed, so an unindexed one stays on the server.
 */
export async function completeSync(
  deps: SyncJobDeps,
  tenant: TenantConfig,
  job: SyncJobData,
  done: {
    key: string;
    etag?: string;
    metadata: Record<string, string>;
    body?: Buffer;
    session: SourceSession;
    index: boolean;
  },
): Promise<void> {
  const syncedAt = Date.now();
  const callRecord = afterIndexing(job.path);
  if (!callRecord) await deps.afterSync?.record(tenant, job, done.key, syncedAt);
  // A recording uploaded without a manifest row looks for one after the write (calls.ts): the same
  // script reads it, so the after-upload step needs no round trip of its own.
  const source = done.metadata['metadata-source'] as MetadataSource | undefined;
  const refs =
    done.index && deps.afterUpload && source !== 'manifest' ? deps.callCheck?.manifestRefs?.(job) : undefined;
  const { manifestRow } = await deps.state.markSynced(
    tenant.org,
    job.path,
    { size: job.size, mtime: job.mtime, key: done.key, etag: done.etag, syncedAt },
    source,
    refs?.length ? { manifestRefs: refs } : undefined,
  );
  if (done.index && deps.afterUpload) {
    await deps.afterUpload(
      tenant,
      job,
      done.key,
      done.body,
      done.metadata,
      manifestRow !== undefined ? { manifestRow } : undefined,
    );
  }
  if (deps.afterSync && tenant.afterSync !== 'keep' && (!callRecord || done.index)) {
    if (callRecord) await deps.afterSync.record(tenant, job, done.key, syncedAt);
    await deps.afterSync.run(tenant, job, done.session);
  }
}

/** The object's ETag after a HEAD confirmed its size. */
export async function verifiedEtag(
  deps: SyncJobDeps,
  key: string,
  size: number,
): Promise<string | undefined> {
  const head = await deps.store.head(key);
  if (!head || head.size !== size) {
    throw new Error(
      `${key}: S3 reports ${head ? `${head.size} bytes` : 'no object'} after upload of ${size}`,
    );
  }
  return head.etag;
}
