/**
 * The only file that imports the AWS SDK: an `ObjectStore` over any S3-compatible server.
 */

import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import { PassThrough, pipeline, type Readable, Transform, Writable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { ObjectHead, ObjectStore, PutOptions } from '../ports/object-store.js';
import { type DirectPut, makeDirectPut } from './s3-put.js';

const MiB = 1024 * 1024;
/** Parts stay far under S3's 10,000 limit: 5 GB → 640 parts of 8 MiB; 100 GB → 2,000 parts. */
const MAX_PARTS = 2000;
export const MIN_PART_SIZE = 8 * MiB;
/** S3's largest single PutObject: anything larger must be a multipart upload. */
export const MAX_SINGLE_PUT = 5 * 1024 * MiB;

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
  /**
   * Aborts multipart uploads under `prefix` started more than `olderThanMs` ago. Returns how many,
   * or `'unsupported'` when the store has no ListMultipartUploads (s3rver answers 501).
   */
  abortStaleUploads(prefix: string, olderThanMs: number): Promise<number | 'unsupported'>;
  /** Cheap reachability probe for /readyz. */
  ping(): Promise<void>;
}

/** An upload made no progress for `s3.idleTimeout`: the store stopped answering. Transient. */
export class S3IdleTimeoutError extends Error {
  override name = 'S3IdleTimeoutError';
}

/**
 * Bytes moved on the sockets of the clients made by `makeS3Client`, per client: the upload watchdog
 * counts a change as progress (a slow part that is still moving is not a stall).
 */
const socketActivity = new WeakMap<S3Client, () => number>();
/** The keep-alive agents of the clients made by `makeS3Client`: the direct PutObject shares them. */
const clientAgents = new WeakMap<S3Client, { http: HttpAgent; https: HttpsAgent }>();

function activityOf(agents: HttpAgent[]): () => number {
  return () => {
    let bytes = 0;
    for (const agent of agents) {
      for (const list of Object.values(agent.sockets)) {
        for (const s of (list ?? []) as Socket[]) bytes += s.bytesWritten + s.bytesRead;
      }
    }
    return bytes;
  };
}

/**
 * The S3 client of the daemon. Credentials come from the standard AWS chain unless given (tests
 * against s3rver give its fixed ones).
 */
/** The SDK's notice when a request with a streamed body fails (it cannot be retried). */
const STREAMING_NOTICE = /non-retryable streaming request/;

/**
 * The logger given to the SDK. Without one (or with its `NoOpLogger`) the SDK writes some warnings
 * to the console. The notice that a streamed request failed is an expected outcome here: the error
 * itself is thrown to the caller, which retries the job and logs the reason; so it goes to debug.
 * Any other warning or error the SDK logs goes to `log` (or stderr when there is none), not dropped.
 */
export function sdkLogger(log?: Logger) {
  const other =
    (level: 'warn' | 'error') =>
    (...args: unknown[]) => {
      const text = args.map((a) =>
        typeof a === 'string' ? a : a instanceof Error ? a.message : JSON.stringify(a),
      );
      if (level === 'warn' && STREAMING_NOTICE.test(text.join(' '))) {
        log?.debug({ source: 'aws-sdk' }, text.join(' '));
        return;
      }
      if (log) log[level]({ source: 'aws-sdk' }, text.join(' '));
      else process.stderr.write(`aws-sdk ${level}: ${text.join(' ')}\n`);
    };
  // The SDK logs every failed command at `error` (a HEAD's expected 404 included) and then throws the
  // same error to the caller, which decides what it means: debug only.
  const failed = (...args: unknown[]) =>
    log?.debug(
      { source: 'aws-sdk' },
      args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '),
    );
  return { trace() {}, debug() {}, info() {}, warn: other('warn'), error: failed };
}

export function makeS3Client(
  cfg: Config['s3'],
  opts: { credentials?: { accessKeyId: string; secretAccessKey: string }; log?: Logger } = {},
): S3Client {
  let ca: Buffer | undefined;
  if (cfg.caFile) {
    try {
      ca = readFileSync(cfg.caFile);
    } catch (err) {
      throw new Error(`s3.caFile: cannot read ${cfg.caFile}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 50 });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 50, ...(ca && { ca }) });
  const client = new S3Client({
    ...(opts.credentials && { credentials: opts.credentials }),
    region: cfg.region,
    endpoint: cfg.endpoint,
    forcePathStyle: cfg.forcePathStyle,
    // Newer SDKs add CRC32 checksums by default, which several S3-compatible stores reject.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    logger: sdkLogger(opts.log),
    // Every request (HEAD, PUT, each part) fails when its socket is silent for idleTimeout: a store
    // that stops answering never hangs a worker. The deadline resets with every byte.
    requestHandler: {
      httpAgent,
      httpsAgent,
      connectionTimeout: Math.min(cfg.idleTimeout, 10_000),
      socketTimeout: cfg.idleTimeout,
    },
  });
  socketActivity.set(client, activityOf([httpAgent, httpsAgent]));
  clientAgents.set(client, { http: httpAgent, https: httpsAgent });
  return client;
}

/**
 * The client as lib-storage's `Upload` sees it: every request carries `signal` (so an abort stops
 * the parts in flight at once, not when they finish), except AbortMultipartUpload, which must still
 * go out after an abort. `onStart`/`onSettle` count the requests in flight.
 */
function scopedClient(client: S3Client, signal: AbortSignal, onStart: () => void, onSettle: () => void) {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop !== 'send') return Reflect.get(target, prop, receiver);
      return (command: Parameters<S3Client['send']>[0], options?: { abortSignal?: AbortSignal }) => {
        if (command instanceof AbortMultipartUploadCommand) return target.send(command, options);
        onStart();
        // biome-ignore lint/suspicious/noExplicitAny: the SDK's send overloads do not take a union
        return (target.send as any)(command, { ...options, abortSignal: signal }).finally(onSettle);
      };
    },
  });
}

/** After an abort, how long the upload may take to stop its parts and abort the multipart upload. */
const ABORT_GRACE_MS = 10_000;

const isNotImplemented = (err: unknown) =>
  err instanceof S3ServiceException &&
  (err.$metadata.httpStatusCode === 501 || err.name === 'NotImplemented');

/** The reason an AbortSignal carries, as an Error (BullMQ's cancel passes a string). */
function toAbortError(reason: unknown): Error {
  if (reason instanceof Error) return reason;
  return Object.assign(new Error(typeof reason === 'string' ? reason : 'aborted'), { name: 'AbortError' });
}

const isNotFound = (err: unknown) =>
  err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound');

export function makeS3Store(cfg: Config['s3'], client: S3Client = makeS3Client(cfg)): S3Store {
  const Bucket = cfg.bucket;
  // AWS's own endpoints (no `endpoint`) are HTTPS.
  const overTls = !cfg.endpoint || cfg.endpoint.startsWith('https:');

  // Buffered bodies (most call files) go up through the direct PutObject (s3-put.ts): the same
  // endpoint, credentials and signature as the SDK's, without its per-request overhead. Resolved on
  // first use; a setup it does not cover keeps the SDK's PutObject.
  let direct: Promise<DirectPut | undefined> | undefined;
  const directPut = () => {
    direct ??= makeDirectPut(client, {
      bucket: Bucket,
      // Over TLS the body is protected in transit: UNSIGNED-PAYLOAD, as the SDK does for streams,
      // instead of a SHA-256 pass over every byte. Over plain HTTP the payload hash stays: it is the
      // store's only check that the bytes arrived as sent.
      signPayload: (tls) => !tls,
      idleTimeoutMs: cfg.idleTimeout,
      agents: clientAgents.get(client),
    });
    return direct;
  };

  async function putSmall(key: string, body: Buffer, opts: PutOptions) {
    const metadata = encodeMetadata(opts.metadata);
    const put = await directPut();
    const res = put
      ? await put({ key, body, metadata, contentType: opts.contentType, signal: opts.signal })
      : await putSmallWithSdk(key, body, metadata, opts);
    safe(() => opts.onProgress?.(body.length));
    return { etag: res.etag };
  }

  async function putSmallWithSdk(
    key: string,
    body: Buffer,
    Metadata: Record<string, string>,
    opts: PutOptions,
  ) {
    const command = new PutObjectCommand({
      Bucket,
      Key: key,
      Body: body,
      ContentLength: body.length,
      ContentType: opts.contentType,
      Metadata,
    });
    if (overTls) {
      command.middlewareStack.add(
        (next) => (args) => {
          (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] =
            'UNSIGNED-PAYLOAD';
          return next(args);
        },
        { step: 'build', name: 'ftpSyncUnsignedPayload' },
      );
    }
    const res = await client.send(command, { abortSignal: opts.signal });
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
      const res = await client.send(
        new PutObjectCommand({
          Bucket,
          Key: key,
          Body: counted,
          ContentLength: opts.size,
          ContentType: opts.contentType,
          Metadata: encodeMetadata(opts.metadata),
        }),
        { abortSignal: request.signal },
      );
      return { etag: res.ETag };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * A multipart upload whose parts stream straight from the body: part N is one UploadPart request
   * whose body is the next `partSize` bytes as they arrive (its length is known from the listing),
   * so nothing is buffered beyond the streams' own high-water marks — memory does not grow with the
   * file or the part size, and stream bodies are signed UNSIGNED-PAYLOAD (no SHA-256 pass). A part
   * fully sent may still await its answer while the next one streams (at most two in flight).
   * Invariant 1 holds on any store: the upload is completed only after the body ended (the gate
   * confirmed the exact byte count); any failure aborts it, so partial parts are never assembled.
   * The SDK cannot retry a streamed part: a failed part fails the transfer and the job is retried.
   * A store that stops answering trips the request handler's `idleTimeout`.
   */
  async function putStreamedParts(key: string, body: Readable, opts: PutOptions) {
    const partSize = partSizeFor(opts.size);
    const idleMs = cfg.idleTimeout;
    const requests = new AbortController();
    let uploadId: string | undefined;
    let part: PassThrough | undefined;
    // The first part to fail stops everything: the body (hence the source) and the other parts.
    let failure: Error | undefined;
    let onFailure: (err: Error) => void = () => {};
    const failed = new Promise<never>((_, reject) => {
      onFailure = reject;
    });
    failed.catch(() => {});
    const fail = (err: Error) => {
      if (failure) return;
      failure = err;
      onFailure(err);
      requests.abort(err);
      part?.destroy(err);
      body.destroy(err);
    };
    const onAbort = () => fail(toAbortError(opts.signal?.reason));
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // A deadline that resets on progress (bytes on the store's sockets, a request settling, a chunk
    // taken from the body), for clients without a socket timeout too. Waiting for the body while
    // the part has sent all it was given is the source being slow, not the store: it never counts.
    let last = Date.now();
    let waitingForBody = false;
    const activity = socketActivity.get(client);
    let seen = activity?.();
    const watchdog = setInterval(
      () => {
        const now = activity?.();
        if (now !== seen) {
          seen = now;
          last = Date.now();
        }
        if (waitingForBody && !part?.writableLength) last = Date.now();
        if (Date.now() - last >= idleMs) {
          fail(
            new S3IdleTimeoutError(`${key}: the store made no progress for ${Math.round(idleMs / 1000)} s`),
          );
        }
      },
      Math.max(50, Math.min(1000, Math.floor(idleMs / 4))),
    );
    watchdog.unref();
    const settled = () => {
      last = Date.now();
    };
    try {
      const created = await client.send(
        new CreateMultipartUploadCommand({
          Bucket,
          Key: key,
          ContentType: opts.contentType,
          Metadata: encodeMetadata(opts.metadata),
        }),
        { abortSignal: requests.signal },
      );
      uploadId = created.UploadId;
      const uploads: Promise<{ ETag?: string; PartNumber: number }>[] = [];
      const answered = new Set<number>(); // part numbers the store confirmed
      const startPart = (length: number) => {
        const PartNumber = uploads.length + 1;
        const stream = new PassThrough({ highWaterMark: 256 * 1024 });
        stream.on('error', () => {}); // destroyed with the cause by fail(); reported from there
        const sending = client
          .send(
            new UploadPartCommand({
              Bucket,
              Key: key,
              UploadId: uploadId,
              PartNumber,
              Body: stream,
              ContentLength: length,
            }),
            { abortSignal: requests.signal },
          )
          .then((res) => {
            answered.add(PartNumber);
            return { ETag: res.ETag, PartNumber };
          })
          .finally(settled);
        sending.catch((err: Error) => fail(err));
        uploads.push(sending);
        return stream;
      };
      let remaining = opts.size;
      let left = 0; // bytes still to write into `part`
      let sent = 0;
      // Splits the body into parts as it flows, chunk by chunk as they come (a Writable: no copies,
      // unlike async iteration, which concatenates whatever is buffered). Synchronous unless it must
      // wait (a part's drain, or the part before the last one's answer): no promise per chunk.
      const feed = (chunk: Buffer, done: (err?: Error | null) => void) => {
        let data = chunk;
        const step = (): void => {
          while (data.length) {
            if (!part) {
              if (remaining === 0) {
                done(new Error(`${key}: the body is longer than its declared ${opts.size} bytes`));
                return;
              }
              // At most two parts in flight: the one streaming and the one before it awaiting its answer.
              // uploads[i] is part i + 1, so the one two back is part `uploads.length - 1`.
              if (uploads.length >= 2 && !answered.has(uploads.length - 1)) {
                uploads[uploads.length - 2]!.then(step, done);
                return;
              }
              left = Math.min(partSize, remaining);
              part = startPart(left);
            }
            const n = Math.min(left, data.length);
            const piece = n === data.length ? data : data.subarray(0, n);
            data = data.subarray(n);
            left -= n;
            remaining -= n;
            sent += n;
            const more = part.write(piece);
            if (left === 0) {
              part.end();
              part = undefined;
            } else if (!more) {
              afterDrain(part, step, done); // fails when fail() destroys the part
              return;
            }
          }
          safe(() => opts.onProgress?.(sent));
          done();
        };
        step();
      };
      waitingForBody = true;
      const splitter = new Writable({
        highWaterMark: 64 * 1024,
        write(chunk: Buffer, _enc, cb) {
          waitingForBody = false;
          last = Date.now();
          feed(chunk, (err) => {
            waitingForBody = !err;
            cb(err);
          });
        },
      });
      await Promise.race([pipelineAsync(body, splitter), failed]);
      waitingForBody = false;
      // The body ended: its producer vouches for every byte (see transfer.ts's gate).
      if (remaining !== 0) throw new Error(`${key}: the body ended ${remaining} bytes short`);
      const parts = await Promise.race([Promise.all(uploads), failed]);
      const res = await client.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
        { abortSignal: requests.signal },
      );
      return { etag: res.ETag };
    } catch (err) {
      const cause = failure ?? (err as Error);
      fail(cause);
      if (uploadId) await abortUpload(key, uploadId);
      throw cause;
    } finally {
      clearInterval(watchdog);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Best effort, bounded: a store that does not answer leaves the upload to the stale-upload cleanup. */
  async function abortUpload(key: string, UploadId: string) {
    const timeout = AbortSignal.timeout(ABORT_GRACE_MS);
    await client
      .send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId }), { abortSignal: timeout })
      .catch(() => {});
  }

  /**
   * A multipart upload with a deadline that resets on progress: when requests are in flight and for
   * `s3.idleTimeout` none of them settled, no byte moved on the store's sockets and the upload took
   * no byte of the body, it is aborted (S3IdleTimeoutError, retried). Time spent waiting for the
   * body (a slow source) does not count. An abort (deadline, shutdown, the source failing) stops the
   * parts in flight at once and sends AbortMultipartUpload before this rejects, within a grace period.
   */
  async function putMultipart(key: string, body: Readable, opts: PutOptions) {
    const idleMs = cfg.idleTimeout;
    const requests = new AbortController();
    let inflight = 0;
    let last = Date.now();
    const progress = () => {
      last = Date.now();
    };
    const activity = socketActivity.get(client);
    let seen = activity?.();
    const counted = new Transform({
      transform(chunk, _enc, cb) {
        progress();
        cb(null, chunk);
      },
    });
    pipeline(body, counted, () => {});
    const upload = new Upload({
      client: scopedClient(
        client,
        requests.signal,
        () => {
          inflight++;
          progress();
        },
        () => {
          inflight--;
          progress();
        },
      ),
      params: {
        Bucket,
        Key: key,
        Body: counted,
        ContentType: opts.contentType,
        Metadata: encodeMetadata(opts.metadata),
      },
      partSize: partSizeFor(opts.size),
      queueSize: cfg.queueSize,
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
          stop(
            new S3IdleTimeoutError(`${key}: the store made no progress for ${Math.round(idleMs / 1000)} s`),
          );
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
      if (Buffer.isBuffer(body)) return putSmall(key, body, opts);
      if (opts.singlePut && opts.size <= MAX_SINGLE_PUT) return putStream(key, body, opts);
      if (cfg.multipartUpload === 'stream') return putStreamedParts(key, body, opts);
      return putMultipart(key, body, opts);
    },
    async get(key) {
      const res = await client.send(new GetObjectCommand({ Bucket, Key: key }));
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
    async ping() {
      await client.send(new HeadBucketCommand({ Bucket }));
    },
  };
}

/** Calls `resume` once `stream` drains, or `fail` if it errors first. */
function afterDrain(stream: PassThrough, resume: () => void, fail: (err: Error) => void) {
  const onDrain = () => {
    stream.off('error', onError);
    resume();
  };
  const onError = (err: Error) => {
    stream.off('drain', onDrain);
    fail(err);
  };
  stream.once('drain', onDrain);
  stream.once('error', onError);
}

/** A side channel must never break a transfer. */
function safe(fn: () => void) {
  try {
    fn();
  } catch {
    /* ignored on purpose */
  }
}
