import type { Readable } from 'node:stream';

export interface ObjectHead {
  size: number;
  etag?: string;
  /** User metadata (x-amz-meta-*), keys in lower case. */
  metadata: Record<string, string>;
  contentType?: string;
}

export interface PutOptions {
  /** Exact byte length of the body. */
  size: number;
  metadata: Record<string, string>;
  contentType?: string;
  signal?: AbortSignal;
  /** Called with bytes sent so far; never allowed to break the upload. */
  onProgress?: (bytes: number) => void;
  /**
   * The body's SHA-256 (hex), when the caller computed it anyway: an in-memory body is signed with it
   * (the store checks the body against it; the client does not hash it again). Only for a Buffer body.
   */
  sha256?: string;
  /** A stream body goes up as one PutObject (its length is `size`) instead of a multipart upload. */
  singlePut?: boolean;
  /**
   * The source version the body is (`size:mtime`). With it, a multipart upload that fails after
   * the store confirmed some of its parts is left open (not aborted) for a retry of the same version
   * to resume (`resumable`); without it, a failed upload is aborted.
   */
  version?: string;
  /** Continue this upload: the body is the object's bytes from `resume.offset` to `size`. */
  resume?: ResumePoint;
}

/** A multipart upload an earlier attempt left open, as far as the store holds it. */
export interface ResumePoint {
  /** Leading bytes of the object the store holds in complete parts: the body starts here. */
  readonly offset: number;
  /** The store's own handle on the upload; opaque to callers. */
  readonly handle: unknown;
}

export interface ObjectStore {
  head(key: string): Promise<ObjectHead | undefined>;
  /** Uploads a whole object. A stream body must end only when it is complete and correct. */
  put(key: string, body: Readable | Buffer, opts: PutOptions): Promise<{ etag?: string }>;
  /** The object's body as a stream. */
  get(key: string): Promise<Readable>;
  /**
   * Bytes `start` (inclusive) to `end` (exclusive) of the object, as a stream (one ranged GET): the
   * random access that zip batches are read with, straight from the store. `end` must not be past
   * the object's size and `end - start` must be at least 1.
   */
  getRange(key: string, start: number, end: number): Promise<Readable>;
  delete(key: string): Promise<void>;
  /**
   * Replaces an object's user metadata in place (a copy onto the same key; the body is not sent
   * again). `contentType` is kept as given (a replacing copy would otherwise reset it).
   */
  replaceMetadata(key: string, metadata: Record<string, string>, contentType?: string): Promise<void>;
  list(prefix: string): AsyncIterable<{ key: string; size: number }>;
  /**
   * The upload of `key` an earlier attempt left open for this `version` (see `PutOptions.version`),
   * with how many leading bytes it holds; undefined when there is none worth resuming. An open
   * upload of `key` for another version is aborted here. Absent: the store does not resume.
   */
  resumable?(key: string, version: string, size: number): Promise<ResumePoint | undefined>;
  /** Aborts an upload `resumable` offered (the source could not start at its offset). Never throws. */
  discard?(point: ResumePoint): Promise<void>;
}
