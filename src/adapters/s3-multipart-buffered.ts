/**
 * `s3.multipartUpload: buffer`: lib-storage's `Upload`, parts of 8 MiB or more read into memory and
 * `queueSize` of them sent in parallel, each retried on its own.
 *
 * Why a second multipart path: the streamed one (`s3-multipart.ts`, the default) has one part on
 * the wire per upload, so a single large file to a distant store goes no faster than one
 * connection's window allows. Parallel parts fill a long, fat link; they cost memory
 * ((queueSize + 1) × part size per upload), which is why they are not the default.
 */
import { pipeline, type Readable, Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { PutOptions } from '../ports/object-store.js';
import type { UploadRecords } from '../ports/upload-records.js';
import { abortable } from './s3-client.js';
import {
  ABORT_GRACE_MS,
  activityOf,
  encodeMetadata,
  partSizeFor,
  quietly,
  S3IdleTimeoutError,
  safe,
  toAbortError,
  type UploadTarget,
} from './s3-multipart.js';

/**
 * The client as lib-storage's `Upload` sees it: every request carries `signal` (so an abort stops
 * the parts in flight at once, not when they finish), except AbortMultipartUpload, which must still
 * go out after an abort. `onStart`/`onSettle` count the requests in flight. The multipart upload is
 * recorded in `records` once created, its confirmed parts counted, and forgotten once completed or
 * aborted.
 */
function scopedClient(
  client: S3Client,
  signal: AbortSignal,
  onStart: () => void,
  onSettle: () => void,
  records: UploadRecords | undefined,
) {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop !== 'send') return Reflect.get(target, prop, receiver);
      return (command: Parameters<S3Client['send']>[0], options?: { abortSignal?: AbortSignal }) => {
        // biome-ignore lint/suspicious/noExplicitAny: the SDK's send overloads do not take a union
        const send = target.send.bind(target) as (c: typeof command, o?: object) => Promise<any>;
        if (command instanceof AbortMultipartUploadCommand) {
          const id = command.input.UploadId;
          return send(command, options).then(async (res) => {
            if (id) await quietly(records?.remove(id));
            return res;
          });
        }
        onStart();
        return send(command, abortable(target, command, signal))
          .then(async (res) => {
            if (command instanceof CreateMultipartUploadCommand && res.UploadId) {
              const { Bucket = '', Key = '' } = command.input;
              await quietly(
                records?.add({ uploadId: res.UploadId, bucket: Bucket, key: Key, startedAt: Date.now() }),
              );
            } else if (command instanceof UploadPartCommand && command.input.UploadId) {
              const body = command.input.Body;
              const n = command.input.ContentLength ?? (body instanceof Uint8Array ? body.byteLength : 0);
              await quietly(records?.progress(command.input.UploadId, n));
            } else if (command instanceof CompleteMultipartUploadCommand && command.input.UploadId) {
              await quietly(records?.remove(command.input.UploadId));
            }
            return res;
          })
          .finally(onSettle);
      };
    },
  });
}

/**
 * A deadline that resets on progress: when requests are in flight and for `idleTimeoutMs` none of
 * them settled, no byte moved on the store's sockets and the upload took no byte of the body, it is
 * aborted (S3IdleTimeoutError, retried). Time spent waiting for the body (a slow source) does not
 * count. An abort (deadline, shutdown, the source failing) stops the parts in flight at once and
 * sends AbortMultipartUpload before this rejects, within a grace period.
 */
export async function putBufferedParts(
  t: UploadTarget & { queueSize: number },
  key: string,
  body: Readable,
  opts: PutOptions,
): Promise<{ etag?: string }> {
  const idleMs = t.idleTimeoutMs;
  const requests = new AbortController();
  let inflight = 0;
  let last = Date.now();
  const progress = () => {
    last = Date.now();
  };
  const activity = activityOf(t.client);
  let seen = activity?.();
  // The body must be exactly `opts.size` bytes: one that ends early (or runs long) fails the upload,
  // which is then aborted, instead of completing a truncated object.
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      progress();
      bytes += chunk.length;
      if (bytes > opts.size) return cb(new Error(`${key}: the body is longer than its ${opts.size} bytes`));
      cb(null, chunk);
    },
    flush(cb) {
      if (bytes < opts.size) return cb(new Error(`${key}: the body ended ${opts.size - bytes} bytes short`));
      cb();
    },
  });
  pipeline(body, counted, () => {});
  const upload = new Upload({
    client: scopedClient(
      t.client,
      requests.signal,
      () => {
        inflight++;
        progress();
      },
      () => {
        inflight--;
        progress();
      },
      t.records,
    ),
    params: {
      Bucket: t.bucket,
      Key: key,
      Body: counted,
      ContentType: opts.contentType,
      Metadata: encodeMetadata(opts.metadata),
    },
    partSize: partSizeFor(opts.size, t.partSize),
    queueSize: t.queueSize,
    leavePartsOnError: false,
  });
  let stopped: Error | undefined;
  let onStopped: (err: Error) => void = () => {};
  const stoppedLate = new Promise<never>((_, reject) => {
    onStopped = (err) => setTimeout(() => reject(err), ABORT_GRACE_MS).unref();
  });
  stoppedLate.catch(() => {});
  const stop = (err: Error) => {
    if (stopped) return;
    stopped = err;
    requests.abort(err);
    counted.destroy(err);
    onStopped(err);
  };
  const onAbort = () => stop(toAbortError(opts.signal?.reason));
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const watchdog = setInterval(
    () => {
      const now = activity?.();
      if (now !== seen) {
        seen = now;
        progress();
      }
      if (inflight === 0) return progress(); // waiting for the body (the source), not for the store
      if (Date.now() - last >= idleMs) {
        stop(new S3IdleTimeoutError(`${key}: the store made no progress for ${Math.round(idleMs / 1000)} s`));
      }
    },
    Math.max(50, Math.min(1000, Math.floor(idleMs / 4))),
  );
  watchdog.unref();
  // Upload.on() keeps only the last handler registered per event name: register exactly one.
  upload.on('httpUploadProgress', (p) => safe(() => opts.onProgress?.(p.loaded ?? 0)));
  try {
    const res = await Promise.race([upload.done(), stoppedLate]);
    return { etag: res.ETag };
  } catch (err) {
    // The upload reads no more: let go of the body (and, through it, the source) whatever failed.
    counted.destroy();
    throw stopped ?? err;
  } finally {
    clearInterval(watchdog);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
