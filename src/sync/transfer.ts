/**
 * One transfer: FTP → gate → S3. Invariant 1: no partial object, ever. The body handed to S3 ends
 * only after the FTP transfer resolved *and* the byte count equals the listed size. basic-ftp ends
 * its destination stream even when a transfer fails, so the stream we give it is never the upload
 * body itself: it is a sink whose end is ignored.
 */
import { PassThrough, Writable } from 'node:stream';
import { causeOf, ResumeRefusedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ObjectStore, ResumePoint } from '../ports/object-store.js';
import type { SourceSession } from '../ports/source.js';
import type { Throttle } from './throttle.js';

/** The byte count did not match the listing: the file changed, or the transfer was cut short. */
export class SizeMismatchError extends Error {
  override name = 'SizeMismatchError';
  constructor(
    readonly path: string,
    readonly expected: number,
    readonly got: number,
  ) {
    super(
      got > expected
        ? `${path}: more than the listed ${expected} bytes arrived (the file is still growing?)`
        : `${path}: transfer ended after ${got} of ${expected} bytes`,
    );
  }
}

/**
 * A gate between the FTP download and the upload body. `sink` receives the download; `body` is what
 * the upload reads. `body` ends only through `open()`, after the download resolved with the exact
 * byte count; every other outcome destroys it with an error.
 */
function makeGate(path: string, size: number, throttle?: Throttle, highWaterMark = 256 * 1024) {
  const body = new PassThrough({ highWaterMark });
  let count = 0;
  let pending: ((err?: Error | null) => void) | undefined;
  body.on('close', () => {
    const cb = pending;
    pending = undefined;
    cb?.(new Error('upload body closed'));
  });
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      if (throttle) {
        throttle(chunk.length).then(() => pass(chunk, cb), cb);
        return;
      }
      pass(chunk, cb);
    },
    // basic-ftp ends this stream even when the transfer failed: deliberately do not end `body`.
    final(cb) {
      cb();
    },
  });
  function pass(chunk: Buffer, cb: (err?: Error | null) => void) {
    count += chunk.length;
    if (count > size) return cb(new SizeMismatchError(path, size, count));
    if (body.destroyed) return cb(new Error('upload body closed'));
    if (body.write(chunk)) return cb();
    pending = cb;
    body.once('drain', () => {
      pending = undefined;
      cb();
    });
  }
  sink.on('error', () => {}); // surfaced through the download promise
  return {
    sink,
    body,
    get count() {
      return count;
    },
    /** The download resolved: end the body if and only if the byte count is exact. */
    open() {
      if (count !== size) {
        const err = new SizeMismatchError(path, size, count);
        body.destroy(err);
        throw err;
      }
      body.end();
    },
    fail(err: Error) {
      body.destroy(err);
    },
  };
}

/** Files up to this size are read into memory and sent from there; larger ones are streamed. */
const BUFFER_LIMIT = 16 * 1024 * 1024;

/**
 * Downloads a whole (small) file into memory and checks its length. The buffer is the listed size,
 * filled as the chunks come: each chunk is garbage as soon as it is copied (a list of chunks joined at
 * the end would keep them all alive until then, and copy every byte a second time).
 */
async function downloadToBuffer(
  session: SourceSession,
  remotePath: string,
  path: string,
  size: number,
  signal?: AbortSignal,
  throttle?: Throttle,
): Promise<Buffer> {
  const body = Buffer.allocUnsafe(size);
  let count = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (throttle) throttle(chunk.length).then(() => keep(chunk, cb), cb);
      else keep(chunk, cb);
    },
  });
  function keep(chunk: Buffer, cb: (err?: Error | null) => void) {
    if (count + chunk.length > size) {
      count += chunk.length; // what arrived, for the error below if the download itself ends well
      return cb(new SizeMismatchError(path, size, count));
    }
    count += chunk.copy(body, count);
    cb();
  }
  sink.on('error', () => {});
  await session.download(remotePath, sink, signal);
  if (count !== size) throw new SizeMismatchError(path, size, count);
  return body;
}

export interface TransferInput {
  session: SourceSession;
  store: ObjectStore;
  /** Absolute path on the server. */
  remotePath: string;
  /** Path relative to the source root (for messages). */
  path: string;
  size: number;
  key: string;
  metadata: Record<string, string>;
  contentType?: string;
  /**
   * Files up to this size go as one PutObject (from memory up to BUFFER_LIMIT, streamed above);
   * larger ones stream as a multipart upload. The store makes the same choice for a stream body.
   */
  multipartThreshold: number;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
  /** The tenant's `maxBandwidth`, spent as the source is read (sync/throttle.ts). */
  throttle?: Throttle;
  /**
   * The source version (`size:mtime`). With it, a multipart upload that fails is kept by the store
   * for a retry of this version, and a retry resumes one an earlier attempt left: the source is
   * read from the end of the last part the store holds (FTP `REST`, SFTP offset).
   */
  version?: string;
  log?: Logger;
}

export interface TransferResult {
  etag?: string;
  buffer?: Buffer;
  /** Bytes not read again from the source because the upload resumed where an earlier attempt left off. */
  resumedFrom?: number;
}

/**
 * Streams one file from the source into the object store. Resolves once S3 confirmed the object.
 *
 * Resume: a streamed multipart transfer of a version an earlier attempt left unfinished continues
 * that upload (the store lists its complete parts) and reads only the rest of the file. The byte
 * count is still checked (invariant 1): the parts the store holds plus the bytes read must be the
 * listed size exactly. A source that refuses the offset: the upload is aborted and the file read
 * from its start.
 */
export async function transferFile(t: TransferInput): Promise<TransferResult> {
  const putOpts = {
    size: t.size,
    metadata: t.metadata,
    contentType: t.contentType,
    signal: t.signal,
    onProgress: t.onProgress,
  };
  if (t.size <= Math.min(t.multipartThreshold, BUFFER_LIMIT)) {
    // Small files (zero-byte ones included: lib-storage can hang on an empty body) go as one PUT.
    const buffer = await downloadToBuffer(t.session, t.remotePath, t.path, t.size, t.signal, t.throttle);
    return { ...(await t.store.put(t.key, buffer, putOpts)), buffer };
  }

  const singlePut = t.size <= t.multipartThreshold;
  let resume: ResumePoint | undefined;
  if (!singlePut && t.version && t.store.resumable) {
    resume = await t.store.resumable(t.key, t.version, t.size);
    if (resume && !t.session.downloadFrom) {
      t.log?.debug({ offset: resume.offset }, 'the source cannot resume a download: starting over');
      await t.store.discard?.(resume);
      resume = undefined;
    }
  }
  if (resume) {
    try {
      const res = await streamFile(t, resume);
      return { ...res, resumedFrom: resume.offset };
    } catch (err) {
      if (!causeOf(err, ResumeRefusedError)) throw err;
      t.log?.debug(
        { offset: resume.offset, err: (err as Error).message },
        'the source refused to resume the download: starting over',
      );
      await t.store.discard?.(resume);
    }
  }
  return streamFile(t, undefined);
}

/** One streamed transfer, from `resume.offset` when given (the store continues that upload). */
async function streamFile(t: TransferInput, resume: ResumePoint | undefined): Promise<TransferResult> {
  const putOpts = {
    size: t.size,
    metadata: t.metadata,
    contentType: t.contentType,
    signal: t.signal,
    onProgress: t.onProgress,
    ...(t.version && { version: t.version }),
    ...(resume && { resume }),
  };
  const offset = resume?.offset ?? 0;
  const singlePut = t.size <= t.multipartThreshold;
  // The gate counts the bytes read from the source: the rest of the file after `offset`.
  const gate = makeGate(t.path, t.size - offset, t.throttle);
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(t.signal?.reason);
  t.signal?.addEventListener('abort', onOuterAbort, { once: true });
  // The first failure is the cause; the other side's failure is only its consequence.
  let first: Error | undefined;
  try {
    const reading =
      resume && t.session.downloadFrom
        ? t.session.downloadFrom(t.remotePath, gate.sink, offset, abort.signal)
        : t.session.download(t.remotePath, gate.sink, abort.signal);
    if (resume) t.log?.info({ offset, size: t.size }, 'transfer resumed');
    const download = reading.then(
      () => {
        try {
          gate.open();
        } catch (err) {
          first ??= err as Error;
          throw err;
        }
      },
      (err: Error) => {
        first ??= err;
        gate.fail(err);
        throw err;
      },
    );
    const upload = t.store
      .put(t.key, gate.body, { ...putOpts, signal: abort.signal, singlePut })
      .catch((err: Error) => {
        first ??= err;
        abort.abort(err); // stop reading from FTP when S3 gave up
        throw err;
      });
    const [d, u] = await Promise.allSettled([download, upload]);
    if (d.status === 'rejected' || u.status === 'rejected') throw first;
    return u.value;
  } finally {
    t.signal?.removeEventListener('abort', onOuterAbort);
  }
}
