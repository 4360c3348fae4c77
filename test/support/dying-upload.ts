/**
 * A process that dies mid upload, for the stale-upload tests (s3rver and RGW): a streamed multipart
 * upload whose body never ends (`sent` bytes of its declared 64 MiB written), through a client of its
 * own, recorded under `owner`. `die()` stops its lease, as a kill -9 would; the upload is neither
 * completed nor aborted.
 */
import { PassThrough } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { makeS3Store } from '../../src/adapters/s3.js';
import type { Config } from '../../src/config.js';
import type { UploadRecords } from '../../src/ports/upload-records.js';
import { waitFor } from './wait.js';

const MiB = 1024 * 1024;

export async function dyingUpload(o: {
  records: UploadRecords;
  owner: string;
  s3: Config['s3'];
  /** The dying process's own client; destroyed by the cleanup. */
  client: S3Client;
  key: string;
  sent: number;
  version?: string;
  /** Where the body's end and the client's destruction are registered for after the test. */
  cleanups: (() => Promise<unknown> | unknown)[];
}) {
  const store = makeS3Store(o.s3, o.client, { records: o.records });
  const body = new PassThrough();
  body.write(Buffer.alloc(o.sent, 7));
  const put = store.put(o.key, body, {
    size: 64 * MiB,
    metadata: {},
    ...(o.version && { version: o.version }),
  });
  put.catch(() => {});
  o.cleanups.push(async () => {
    body.destroy();
    await put.catch(() => {});
    o.client.destroy();
  });
  const mine = async () => (await o.records.list()).find((r) => r.key === o.key && r.owner === o.owner);
  // The parts of 8 MiB (s3.partSize) the store holds once they are recorded.
  const parts = Math.floor(o.sent / (8 * MiB)) * 8 * MiB;
  await waitFor('the upload recorded', async () => ((await mine())?.bytes ?? -1) >= parts);
  const found = await mine();
  if (!found) throw new Error('not recorded');
  return { uploadId: found.uploadId, store, records: o.records, die: () => o.records.close() };
}
