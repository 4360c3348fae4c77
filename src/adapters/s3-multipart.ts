/**
 * A multipart upload whose parts stream straight from the body, through the SDK's multipart
 * commands (CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload).
 */
import type { PassThrough as PassThroughType, Readable } from 'node:stream';
import { PassThrough, Writable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListPartsCommand,
  type S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { PutOptions, ResumePoint } from '../ports/object-store.js';
import type { UploadRecords } from '../ports/upload-records.js';
import { abortable, TunedS3Client } from './s3-client.js';

const MiB = 1024 * 1024;
/** Parts stay far under S3's 10,000 limit: 5 GB → 640 parts of 8 MiB; 100 GB → 2,000 parts. */
const MAX_PARTS = 2000;
export const MIN_PART_SIZE = 8 * MiB;

/** `min`: `s3.partSize` (S3 takes parts of 5 MiB or more, the last one excepted). */
export function partSizeFor(size: number, min = MIN_PART_SIZE): number {
  return Math.max(min, Math.ceil(size / MAX_PARTS / MiB) * MiB);
}

/** HTTP header values must be printable ASCII; other values are percent-encoded. */
export function encodeMetadata(meta: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) out[k] = /^[\x20-\x7e]*$/.test(v) ? v : encodeURIComponent(v);
  return out;
}

/** An upload made no progress for `s3.idleTimeout`: the store stopped answering. Transient. */
export class S3IdleTimeoutError extends Error {
  override name = 'S3IdleTimeoutError';
}

/** After an abort, how long an upload may take to stop its parts and abort the multipart upload. */
export const ABORT_GRACE_MS = 10_000;

/** Where an upload goes and how long it may stay silent. */
export interface UploadTarget {
  client: S3Client;
  bucket: string;
  idleTimeoutMs: number;
  /** Where open multipart uploads are recorded (crash safety); none: not recorded. */
  records?: UploadRecords;
  /** The smallest part size (`s3.partSize`). @defaultValue MIN_PART_SIZE */
  partSize?: number;
}

/** Best effort: Redis failing must not fail an upload (the record is a safety net, not a step). */
export async function quietly(p: Promise<unknown> | undefined): Promise<void> {
  await p?.catch(() => {});
}

/** The reason an AbortSignal carries, as an Error (BullMQ's cancel passes a string). */
export function toAbortError(reason: unknown): Error {
  if (reason instanceof Error) return reason;
  return Object.assign(new Error(typeof reason === 'string' ? reason : 'aborted'), { name: 'AbortError' });
}

/** A side channel must never break a transfer. */
export function safe(fn: () => void) {
  try {
    fn();
  } catch {
    /* ignored on purpose */
  }
}

/** Bytes moved on the client's sockets, when it can tell (a client made by `makeS3Client`). */
export function activityOf(client: S3Client): (() => number) | undefined {
  return client instanceof TunedS3Client ? () => client.bytesMoved() : undefined;
}

/**
 * Best effort, bounded: a store that does not answer (or refuses) leaves the upload recorded, for
 * the stale-upload cleanup.
 */
export async function abortUpload(t: UploadTarget, key: string, UploadId: string) {
  const command = new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: key, UploadId });
  const timeout = AbortSignal.timeout(ABORT_GRACE_MS);
  await t.client
    .send(command, abortable(t.client, command, timeout))
    .then(() => quietly(t.records?.remove(UploadId)))
    .catch(() => {});
}

/**
 * Part N is one UploadPart request whose body is the next `partSize` bytes as they arrive (its
 * length is known from the listing), so nothing is buffered beyond the streams' own high-water
 * marks — memory does not grow with the file or the part size, and stream bodies are signed
 * UNSIGNED-PAYLOAD (no SHA-256 pass). A part fully sent may still await its answer while the next
 * one streams (at most two in flight).
 *
 * Invariant 1 holds on any store: the upload is completed only after the body ended (the gate
 * confirmed the exact byte count); any failure aborts it, so partial parts are never assembled.
 * The SDK cannot retry a streamed part: a failed part fails the transfer and the job is retried.
 *
 * A deadline resets on progress (bytes on the store's sockets, a request settling, a chunk taken
 * from the body): a store that stops answering fails the upload with `S3IdleTimeoutError`, also
 * with a client that has no socket timeout. Waiting for the body (a slow source) never counts.
 */
export async function putStreamedParts(
  t: UploadTarget,
  key: string,
  body: Readable,
  opts: PutOptions,
): Promise<{ etag?: string }> {
  const { client, bucket: Bucket, idleTimeoutMs: idleMs } = t;
  const resumed = opts.resume ? handleOf(opts.resume) : undefined;
  const partSize = resumed?.partSize ?? partSizeFor(opts.size, t.partSize);
  const requests = new AbortController();
  let uploadId: string | undefined = resumed?.uploadId;
  let part: PassThrough | undefined;
  // The first part to fail stops everything: the body (hence the source) and the other parts.
  let failure: Error | undefined;
  let answered = new Set<number>(); // part numbers the store confirmed
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
  let last = Date.now();
  let waitingForBody = false;
  const activity = activityOf(client);
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
        fail(new S3IdleTimeoutError(`${key}: the store made no progress for ${Math.round(idleMs / 1000)} s`));
      }
    },
    Math.max(50, Math.min(1000, Math.floor(idleMs / 4))),
  );
  watchdog.unref();
  const settled = () => {
    last = Date.now();
  };
  try {
    if (!resumed) {
      const create = new CreateMultipartUploadCommand({
        Bucket,
        Key: key,
        ContentType: opts.contentType,
        Metadata: encodeMetadata(opts.metadata),
      });
      const created = await client.send(create, abortable(client, create, requests.signal));
      uploadId = created.UploadId;
      if (uploadId) {
        const resumable = opts.version ? { version: opts.version, partSize } : {};
        await quietly(t.records?.add({ uploadId, bucket: Bucket, key, startedAt: Date.now(), ...resumable }));
      }
    }
    // A resumed upload starts with the parts the store holds already (listed by `resumableUpload`).
    const uploads: Promise<{ ETag?: string; PartNumber: number }>[] = (resumed?.parts ?? []).map((p) =>
      Promise.resolve(p),
    );
    answered = new Set<number>(uploads.map((_, i) => i + 1));
    const startPart = (length: number) => {
      const PartNumber = uploads.length + 1;
      const stream = new PassThrough({ highWaterMark: 256 * 1024 });
      stream.on('error', () => {}); // destroyed with the cause by fail(); reported from there
      const command = new UploadPartCommand({
        Bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber,
        Body: stream,
        ContentLength: length,
      });
      const sending = client
        .send(command, abortable(client, command, requests.signal))
        .then(async (res) => {
          answered.add(PartNumber);
          if (uploadId) await quietly(t.records?.progress(uploadId, length));
          return { ETag: res.ETag, PartNumber };
        })
        .finally(settled);
      sending.catch((err: Error) => fail(err));
      uploads.push(sending);
      return stream;
    };
    const offset = resumed ? opts.resume!.offset : 0;
    let remaining = opts.size - offset;
    let left = 0; // bytes still to write into `part`
    let sent = offset;
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
            // At most two parts in flight: the one streaming and the one before it awaiting its
            // answer. uploads[i] is part i + 1, so the one two back is part `uploads.length - 1`.
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
    const complete = new CompleteMultipartUploadCommand({
      Bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts },
    });
    const res = await client.send(complete, abortable(client, complete, requests.signal));
    await quietly(t.records?.remove(uploadId as string));
    return { etag: res.ETag };
  } catch (err) {
    const cause = failure ?? (err as Error);
    fail(cause);
    // Kept for a retry of the same version to resume, when the store holds some of it and the
    // caller did not stop us (a shutdown or cancel aborts): the record stays, the stale-upload
    // cleanup aborts it if no retry comes.
    const keep = opts.version && t.records && !opts.signal?.aborted && answered.size > 0;
    if (uploadId && !keep) await abortUpload(t, key, uploadId);
    throw cause;
  } finally {
    clearInterval(watchdog);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Calls `resume` once `stream` drains, or `fail` if it errors first. */
function afterDrain(stream: PassThroughType, resume: () => void, fail: (err: Error) => void) {
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

/** What `resumableUpload` found: the upload and its complete leading parts. */
interface ResumeHandle {
  key: string;
  uploadId: string;
  partSize: number;
  parts: { PartNumber: number; ETag?: string }[];
}

function handleOf(point: ResumePoint): ResumeHandle {
  return point.handle as ResumeHandle;
}

const isNoSuchUpload = (err: unknown) =>
  err instanceof S3ServiceException && (err.name === 'NoSuchUpload' || err.$metadata.httpStatusCode === 404);

/**
 * The multipart upload of `key` an earlier attempt left open for `version` (recorded with its part
 * size), with the parts the store lists (ListParts) that continue from part 1 at their full size.
 * At least one byte is left to read, so the retry's byte count still proves the whole file arrived
 * (invariant 1). Uploads of `key` for another version, and one with no complete part, are aborted;
 * one still owned by another live process is left alone. Undefined: nothing to resume.
 */
export async function resumableUpload(
  t: UploadTarget,
  key: string,
  version: string,
  size: number,
): Promise<ResumePoint | undefined> {
  const { records } = t;
  if (!records) return undefined;
  let found: ResumePoint | undefined;
  for (const r of await records.list()) {
    if (r.bucket !== t.bucket || r.key !== key) continue;
    if (r.owner !== records.owner && (await records.alive(r.owner))) continue; // running elsewhere
    if (found || r.version !== version || !r.partSize) {
      await abortUpload(t, key, r.uploadId);
      continue;
    }
    const parts: { PartNumber: number; ETag?: string }[] = [];
    const wanted = Math.floor((size - 1) / r.partSize); // full parts before the last byte
    try {
      let marker: string | undefined;
      listing: do {
        const list = new ListPartsCommand({
          Bucket: t.bucket,
          Key: key,
          UploadId: r.uploadId,
          PartNumberMarker: marker,
        });
        const res = await t.client.send(
          list,
          abortable(t.client, list, AbortSignal.timeout(t.idleTimeoutMs)),
        );
        for (const p of res.Parts ?? []) {
          if (parts.length >= wanted || p.PartNumber !== parts.length + 1 || p.Size !== r.partSize)
            break listing;
          parts.push({ PartNumber: p.PartNumber, ETag: p.ETag });
        }
        marker = res.IsTruncated ? res.NextPartNumberMarker : undefined;
      } while (marker);
    } catch (err) {
      if (isNoSuchUpload(err)) {
        await quietly(records.remove(r.uploadId));
        continue;
      }
      // A store that cannot list parts (or did not answer): start over.
      await abortUpload(t, key, r.uploadId);
      continue;
    }
    if (parts.length === 0) {
      await abortUpload(t, key, r.uploadId);
      continue;
    }
    if (r.owner !== records.owner) await quietly(records.adopt(r.uploadId));
    const handle: ResumeHandle = { key, uploadId: r.uploadId, partSize: r.partSize, parts };
    found = { offset: parts.length * r.partSize, handle };
  }
  return found;
}

/** Aborts an upload `resumableUpload` offered. Never throws. */
export async function discardUpload(t: UploadTarget, point: ResumePoint): Promise<void> {
  const { key, uploadId } = handleOf(point);
  await abortUpload(t, key, uploadId);
}
