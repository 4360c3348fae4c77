/**
 * The only file that imports the AWS SDK: an `ObjectStore` over any S3-compatible server.
 */
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Config } from '../config.js';
import type { ObjectHead, ObjectStore, PutOptions } from '../ports/object-store.js';

const MiB = 1024 * 1024;
/** Parts stay far under S3's 10,000 limit: 5 GB → 640 parts of 8 MiB; 100 GB → 2,000 parts. */
const MAX_PARTS = 2000;
export const MIN_PART_SIZE = 8 * MiB;

export function partSizeFor(size: number): number {
  return Math.max(MIN_PART_SIZE, Math.ceil(size / MAX_PARTS / MiB) * MiB);
}

/** HTTP header values must be printable ASCII; other values are percent-encoded. */
export function encodeMetadata(meta: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) out[k] = /^[\x20-\x7e]*$/.test(v) ? v : encodeURIComponent(v);
  return out;
}

export interface S3Store extends ObjectStore {
  readonly client: S3Client;
  readonly bucket: string;
  /** Aborts multipart uploads under `prefix` started more than `olderThanMs` ago. Returns how many. */
  abortStaleUploads(prefix: string, olderThanMs: number): Promise<number>;
  /** Cheap reachability probe for /readyz. */
  ping(): Promise<void>;
}

export function makeS3Client(cfg: Config['s3']): S3Client {
  return new S3Client({
    region: cfg.region,
    endpoint: cfg.endpoint,
    forcePathStyle: cfg.forcePathStyle,
    // Newer SDKs add CRC32 checksums by default, which several S3-compatible stores reject.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
}

const isNotFound = (err: unknown) =>
  err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound');

export function makeS3Store(cfg: Config['s3'], client: S3Client = makeS3Client(cfg)): S3Store {
  const Bucket = cfg.bucket;

  async function putSmall(key: string, body: Buffer, opts: PutOptions) {
    const res = await client.send(
      new PutObjectCommand({
        Bucket,
        Key: key,
        Body: body,
        ContentLength: body.length,
        ContentType: opts.contentType,
        Metadata: encodeMetadata(opts.metadata),
      }),
      { abortSignal: opts.signal },
    );
    safe(() => opts.onProgress?.(body.length));
    return { etag: res.ETag };
  }

  async function putMultipart(key: string, body: Readable, opts: PutOptions) {
    const upload = new Upload({
      client,
      params: {
        Bucket,
        Key: key,
        Body: body,
        ContentType: opts.contentType,
        Metadata: encodeMetadata(opts.metadata),
      },
      partSize: partSizeFor(opts.size),
      queueSize: cfg.queueSize,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort().catch(() => {});
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // Upload.on() keeps only the last handler registered per event name: register exactly one.
    upload.on('httpUploadProgress', (p) => safe(() => opts.onProgress?.(p.loaded ?? 0)));
    try {
      const res = await upload.done();
      return { etag: res.ETag };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  return {
    client,
    bucket: Bucket,
    async head(key): Promise<ObjectHead | undefined> {
      try {
        const res = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
        return { size: res.ContentLength ?? 0, etag: res.ETag, metadata: res.Metadata ?? {} };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async put(key, body, opts) {
      if (Buffer.isBuffer(body)) return putSmall(key, body, opts);
      return putMultipart(key, body, opts);
    },
    async get(key) {
      const res = await client.send(new GetObjectCommand({ Bucket, Key: key }));
      return res.Body as Readable;
    },
    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
    },
    async *list(prefix) {
      let ContinuationToken: string | undefined;
      do {
        const res = await client.send(
          new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken }),
        );
        for (const o of res.Contents ?? []) yield { key: o.Key ?? '', size: o.Size ?? 0 };
        ContinuationToken = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (ContinuationToken);
    },
    async abortStaleUploads(prefix, olderThanMs) {
      let aborted = 0;
      let KeyMarker: string | undefined;
      let UploadIdMarker: string | undefined;
      do {
        const res = await client.send(
          new ListMultipartUploadsCommand({ Bucket, Prefix: prefix, KeyMarker, UploadIdMarker }),
        );
        for (const u of res.Uploads ?? []) {
          if (u.Initiated && Date.now() - u.Initiated.getTime() > olderThanMs && u.Key && u.UploadId) {
            await client.send(new AbortMultipartUploadCommand({ Bucket, Key: u.Key, UploadId: u.UploadId }));
            aborted++;
          }
        }
        KeyMarker = res.IsTruncated ? res.NextKeyMarker : undefined;
        UploadIdMarker = res.IsTruncated ? res.NextUploadIdMarker : undefined;
      } while (KeyMarker);
      return aborted;
    },
    async ping() {
      await client.send(new HeadBucketCommand({ Bucket }));
    },
  };
}

/** A side channel must never break a transfer. */
function safe(fn: () => void) {
  try {
    fn();
  } catch {
    /* ignored on purpose */
  }
}
