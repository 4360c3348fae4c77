/**
 * The batch queue: one BullMQ job per archive, whose id is the batch id, so the same archive (same
 * key, same ETag) is never queued twice while its job is kept, and its record is found again.
 */
import { createHash } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { BatchJobData } from '../sync/batch/expand.js';

export const BATCH_QUEUE = 'batch';

/** `b-<org>-<16 hex>`: the tenant, and a hash of the archive's key and ETag (ids may not contain `:`). */
export function batchId(org: string, key: string, etag: string): string {
  const h = createHash('sha256').update(`${org}\0${key}\0${etag}`).digest('hex').slice(0, 16);
  return `b-${org}-${h}`;
}

/** Whether a job id is a batch's (`b-…`): a parked record of a batch entry carries its batch's id. */
export const isBatchJobId = (id: string) => id.startsWith('b-');

/**
 * Lets delayed batch jobs (batches with parked entries waiting for their recheck) run now, `patch`
 * merged into their data first; returns the ids of the jobs released.
 */
export async function releaseBatchJobs(
  queue: Queue<BatchJobData>,
  ids: string[],
  patch?: Partial<BatchJobData>,
): Promise<string[]> {
  const released: string[] = [];
  for (const id of new Set(ids)) {
    const job = await queue.getJob(id);
    if (!job || !(await job.isDelayed())) continue;
    if (patch) await job.updateData({ ...job.data, ...patch }).catch(() => {});
    await job.promote().then(
      () => released.push(id),
      () => {},
    );
  }
  return released;
}

/** Adds the batch's job (a no-op while a job with its id is kept). */
export async function addBatchJob(queue: Queue<BatchJobData>, data: BatchJobData, attempts: number) {
  await queue.add('batch', data, {
    jobId: data.id,
    attempts,
    backoff: { type: 'custom' },
    removeOnComplete: { age: 7 * 86_400 },
    removeOnFail: { age: 30 * 86_400 },
  });
}
