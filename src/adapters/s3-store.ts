/**
 * An `ObjectStore` over any S3-compatible server, through `@aws-sdk/client-s3` (see `s3-client.ts`
 * for the client). One upload path per size class: an in-memory body is one PutObject (the SDK
 * retries it); a stream body whose caller asks for it is one streamed PutObject; any other stream
 * body is a multipart upload with parts streamed from the body (`s3-multipart.ts`), or with
 * buffered parallel parts under `s3.multipartUpload: buffer` (`s3-multipart-buffered.ts`).
 */
import { pipeline, type Readable, Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandOutput,
  type S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { ObjectHead, ObjectStore, PutOptions, ResumePoint } from '../ports/object-store.js';
import type { UploadRecords } from '../ports/upload-records.js';
import { abortable, makeS3Client, withPayloadHash } from './s3-client.js';
import {
  discardUpload,
  encodeMetadata,
  putStreamedParts,
  resumableUpload,
  safe,
  toAbortError,
  type UploadTarget,
} from './s3-multipart.js';
import { putBufferedParts } from './s3-multipart-buffered.js';

/** S3's largest single PutObject: anything larger must be a multipart upload. */
export const MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024;

export interface S3Store extends ObjectStore {
  readonly client: S3Client;
  readonly bucket: string;
  /**
   * Aborts multipart uploads under `prefix` started more than `olderThanMs` ago. Returns how many,
   * or `'unsupported'` when the store has no ListMultipartUploads (s3rver answers 501).
   */
  abortStaleUploads(prefix: string, olderThanMs: number): Promise<number | 'unsupported'>;
  /**
   * Aborts, by id, the recorded multipart uploads of this bucket that are `mine` (this process's:
   * shutdown), or that are older than `olderThanMs`, or whose owner is gone unless a retry may still
   * resume them (start-up and hourly cleanup). Works on stores that cannot list uploads. A store that refuses to abort (405) is
   * warned about once, with the count and bytes left, and those records are dropped. Returns how
   * many were aborted; 0 without a record store.
   */
  abortRecorded(which: { mine: true } | { olderThanMs: number }): Promise<number>;
  /** Cheap reachability probe for /readyz. */
  ping(): Promise<void>;
}

const isNotImplemented = (err: unknown) =>
  err instanceof S3ServiceException &&
  (err.$metadata.httpStatusCode === 501 || err.name === 'NotImplemented');

const isRefused = (err: unknown) =>
  err instanceof S3ServiceException &&
  (err.$metadata.httpStatusCode === 405 || err.name === 'MethodNotAllowed' || err.name === 'NotImplemented');

const isNotFound = (err: unknown) =>
  err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound');

export interface S3StoreOptions {
  /** Where open multipart uploads are recorded, so they can be aborted by id after a crash. */
  records?: UploadRecords;
  /** For the one warning when the store refuses to abort uploads. */
  log?: Logger;
}

export function makeS3Store(
  cfg: Config['s3'],
  client: S3Client = makeS3Client(cfg),
  opts: S3StoreOptions = {},
): S3Store {
  const Bucket = cfg.bucket;
  const { records } = opts;
  const target: UploadTarget = {
    client,
    bucket: Bucket,
    idleTimeoutMs: cfg.idleTimeout,
    records,
    partSize: cfg.partSize,
  };
  let warnedRefused = false;

  /** One PutObject of an in-memory body: the SDK retries it (5xx, throttling, resets, clock skew). */
  async function putBuffer(key: string, body: Buffer, opts: PutOptions) {
    const command = withPayloadHash(
      new PutObjectCommand({
        Bucket,
        Key: key,
        Body: body,
        ContentLength: body.length,
        ContentType: opts.contentType,
        Metadata: encodeMetadata(opts.metadata),
      }),
      opts.sha256,
    );
    let res: PutObjectCommandOutput;
    try {
      res = await client.send(command, abortable(client, command, opts.signal));
    } catch (err) {
      // The caller's abort is what the put rejects with (shutdown), not the SDK's wrapper of it.
      if (opts.signal?.aborted) throw toAbortError(opts.signal.reason);
      throw err;
    }
    safe(() => opts.onProgress?.(body.length));
    return { etag: res.ETag };
  }

  /**
   * One PutObject that streams the body, whose exact length is known from the listing: no part
   * buffers (memory does not grow with the file), no second copy on the store (parts assembled), and
   * the SDK signs a stream as UNSIGNED-PAYLOAD (no SHA-256 pass over the data). The SDK does not
   * retry a stream it cannot replay: a failure fails the transfer and the job is retried. The body
   * failing (the source broke, invariant 1) aborts the request, so the store keeps nothing. A store
   * that stops answering trips the request handler's `idleTimeout`.
   */
  async function putStream(key: string, body: Readable, opts: PutOptions) {
    const request = new AbortController();
    const onAbort = () => request.abort(toAbortError(opts.signal?.reason));
    let sent = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        sent += chunk.length;
        safe(() => opts.onProgress?.(sent));
        cb(null, chunk);
      },
    });
    pipeline(body, counted, (err) => {
      if (err) request.abort(err);
    });
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const command = new PutObjectCommand({
        Bucket,
        Key: key,
        Body: counted,
        ContentLength: opts.size,
        ContentType: opts.contentType,
        Metadata: encodeMetadata(opts.metadata),
      });
      const res = await client.send(command, abortable(client, command, request.signal));
      return { etag: res.ETag };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  const listUploads = (Prefix: string, KeyMarker?: string, UploadIdMarker?: string) =>
    client.send(new ListMultipartUploadsCommand({ Bucket, Prefix, KeyMarker, UploadIdMarker }));

  return {
    client,
    bucket: Bucket,
    async head(key): Promise<ObjectHead | undefined> {
      try {
        const res = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
        return {
          size: res.ContentLength ?? 0,
          etag: res.ETag,
          metadata: res.Metadata ?? {},
          ...(res.ContentType && { contentType: res.ContentType }),
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async put(key, body, opts) {
      if (Buffer.isBuffer(body)) return putBuffer(key, body, opts);
      if (opts.singlePut && opts.size <= MAX_SINGLE_PUT) return putStream(key, body, opts);
      if (cfg.multipartUpload === 'stream') return putStreamedParts(target, key, body, opts);
      return putBufferedParts({ ...target, queueSize: cfg.queueSize }, key, body, opts);
    },
    // Streamed multipart uploads resume (lib-storage's buffered `Upload` cannot continue one).
    ...(cfg.multipartUpload === 'stream' &&
      records && {
        resumable: (key: string, version: string, size: number) =>
          resumableUpload(target, key, version, size),
        discard: (point: ResumePoint) => discardUpload(target, point),
      }),
    async get(key) {
      const res = await client.send(new GetObjectCommand({ Bucket, Key: key }));
      return res.Body as Readable;
    },
    async getRange(key, start, end) {
      if (!(end > start && start >= 0)) throw new RangeError(`${key}: bad range ${start}-${end}`);
      // HTTP ranges are inclusive at both ends.
      const res = await client.send(
        new GetObjectCommand({ Bucket, Key: key, Range: `bytes=${start}-${end - 1}` }),
      );
      if (res.ContentLength !== undefined && res.ContentLength !== end - start) {
        (res.Body as Readable).destroy();
        throw new Error(
          `${key}: asked for ${end - start} bytes at ${start}, the store sent ${res.ContentLength}`,
        );
      }
      return res.Body as Readable;
    },
    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
    },
    async replaceMetadata(key, metadata, contentType) {
      await client.send(
        new CopyObjectCommand({
          Bucket,
          Key: key,
          CopySource: `${Bucket}/${encodeURIComponent(key).replace(/%2F/g, '/')}`,
          MetadataDirective: 'REPLACE',
          Metadata: encodeMetadata(metadata),
          ...(contentType && { ContentType: contentType }),
        }),
      );
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
        let res: Awaited<ReturnType<typeof listUploads>>;
        try {
          res = await listUploads(prefix, KeyMarker, UploadIdMarker);
        } catch (err) {
          if (isNotImplemented(err)) return 'unsupported';
          throw err;
        }
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
    async abortRecorded(which) {
      if (!records) return 0;
      let aborted = 0;
      let refused = 0;
      let bytesLeft = 0;
      for (const r of await records.list()) {
        if (r.bucket !== Bucket) continue;
        // A resumable upload (one with a version) whose process is gone is kept until it is old: the
        // job's retry, in any process, continues it (sync/transfer.ts). One this process kept after
        // a failed attempt is aborted once it is old too.
        const old = 'olderThanMs' in which && Date.now() - r.startedAt > which.olderThanMs;
        const take =
          'mine' in which
            ? r.owner === records.owner
            : old || (r.owner !== records.owner && !r.version && !(await records.alive(r.owner)));
        if (!take) continue;
        try {
          await client.send(new AbortMultipartUploadCommand({ Bucket, Key: r.key, UploadId: r.uploadId }));
          aborted++;
        } catch (err) {
          if (isNotFound(err) || (err instanceof S3ServiceException && err.name === 'NoSuchUpload')) {
            // Completed or aborted already (the record outlived it): nothing left.
          } else if (isRefused(err)) {
            refused++;
            bytesLeft += r.bytes;
          } else {
            continue; // kept: the next pass tries again
          }
        }
        await records.remove(r.uploadId);
      }
      if (refused > 0 && !warnedRefused) {
        // Said once per store: it will not start aborting later, and retrying would only repeat it.
        warnedRefused = true;
        opts.log?.warn(
          { uploads: refused, bytesLeft },
          'the object store refuses to abort multipart uploads (405): their parts stay on it; rely on a lifecycle rule',
        );
      }
      return aborted;
    },
    async ping() {
      await client.send(new HeadBucketCommand({ Bucket }));
    },
  };
}
