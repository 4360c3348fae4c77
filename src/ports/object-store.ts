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
  /** A stream body goes up as one PutObject (its length is `size`) instead of a multipart upload. */
  singlePut?: boolean;
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
}
