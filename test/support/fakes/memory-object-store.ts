/**
 * An in-memory `ObjectStore` for the fast sync-job suite, keeping what S3 guarantees and the domain
 * relies on: an object exists whole or not at all (a stream body that fails, is aborted, or does not
 * hold exactly `size` bytes leaves nothing, not even a previous object's replacement half-done);
 * user metadata comes back with lower-case keys; `replaceMetadata` keeps the body and ETag-worthy
 * bytes; a missing key is `undefined` for `head` and an error for `get` and `replaceMetadata`.
 * (The object-store conformance suite and its own fake live elsewhere; this one is deduplicated with
 * it at merge.)
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ObjectHead, ObjectStore, PutOptions } from '../../../src/ports/object-store.js';

interface StoredObject {
  body: Buffer;
  metadata: Record<string, string>;
  contentType?: string;
  etag: string;
}

export interface MemoryObjectStore extends ObjectStore {
  /** The stored bytes of `key` (undefined when there is no object). */
  body(key: string): Buffer | undefined;
  keys(): string[];
  /** Every call, in order: `head k`, `put k`, `get k`, `getRange k a-b`, `delete k`, `replaceMetadata k`, `list p`. */
  readonly calls: string[];
  /** The next put (of `key`, or any) fails with `err` after reading its body. */
  failNextPut(err: Error, key?: string): void;
}

class NoSuchKeyError extends Error {
  override name = 'NoSuchKey';
  readonly $metadata = { httpStatusCode: 404 };
}

const lower = (m: Record<string, string>) =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v]));
const etagOf = (b: Buffer) => `"${createHash('md5').update(b).digest('hex')}"`;

/**
 * `checkLength: false` stores a stream body of whatever length arrives, so a test can prove that the
 * caller alone keeps invariant 1 (the port puts that duty on it: a stream body ends only when it is
 * complete and correct); by default the store refuses a body that is not `size` bytes, as S3 does.
 */
export function makeMemoryObjectStore(opts: { checkLength?: boolean } = {}): MemoryObjectStore {
  const checkLength = opts.checkLength ?? true;
  const objects = new Map<string, StoredObject>();
  const calls: string[] = [];
  const putFailures: { err: Error; key?: string }[] = [];

  async function readBody(body: Readable | Buffer, opts: PutOptions): Promise<Buffer> {
    if (Buffer.isBuffer(body)) return body;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
      chunks.push(chunk);
      n += chunk.length;
      try {
        opts.onProgress?.(n);
      } catch {
        // progress never breaks an upload
      }
    }
    return Buffer.concat(chunks);
  }

  return {
    calls,
    async head(key): Promise<ObjectHead | undefined> {
      calls.push(`head ${key}`);
      const o = objects.get(key);
      if (!o) return undefined;
      return {
        size: o.body.length,
        etag: o.etag,
        metadata: { ...o.metadata },
        ...(o.contentType && { contentType: o.contentType }),
      };
    },
    async put(key, body, opts) {
      calls.push(`put ${key}`);
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
      const buf = await readBody(body, opts);
      const i = putFailures.findIndex((f) => f.key === undefined || f.key === key);
      if (i >= 0) throw putFailures.splice(i, 1)[0]!.err;
      if (buf.length !== opts.size && (checkLength || Buffer.isBuffer(body))) {
        // S3 refuses a body that does not match its Content-Length; a multipart upload is checked
        // by the adapter. Either way no object.
        throw new Error(`${key}: the body has ${buf.length} bytes, not the ${opts.size} announced`);
      }
      if (
        opts.sha256 &&
        Buffer.isBuffer(body) &&
        createHash('sha256').update(buf).digest('hex') !== opts.sha256
      ) {
        // S3: XAmzContentSHA256Mismatch, nothing stored.
        throw new Error(`${key}: the body does not match the SHA-256 it was signed with`);
      }
      const etag = etagOf(buf);
      objects.set(key, {
        body: Buffer.from(buf),
        metadata: lower(opts.metadata),
        ...(opts.contentType && { contentType: opts.contentType }),
        etag,
      });
      return { etag };
    },
    async get(key) {
      calls.push(`get ${key}`);
      const o = objects.get(key);
      if (!o) throw new NoSuchKeyError(`${key}: no such key`);
      return Readable.from([Buffer.from(o.body)]);
    },
    async getRange(key, start, end) {
      calls.push(`getRange ${key} ${start}-${end}`);
      const o = objects.get(key);
      if (!o) throw new NoSuchKeyError(`${key}: no such key`);
      if (!(end > start && start >= 0 && end <= o.body.length)) {
        throw new RangeError(`${key}: bad range ${start}-${end} of ${o.body.length} bytes`);
      }
      return Readable.from([Buffer.from(o.body.subarray(start, end))]);
    },
    async delete(key) {
      calls.push(`delete ${key}`);
      objects.delete(key);
    },
    async replaceMetadata(key, metadata, contentType) {
      calls.push(`replaceMetadata ${key}`);
      const o = objects.get(key);
      if (!o) throw new NoSuchKeyError(`${key}: no such key`);
      objects.set(key, {
        ...o,
        metadata: lower(metadata),
        ...(contentType ? { contentType } : { contentType: undefined }),
      });
    },
    async *list(prefix) {
      calls.push(`list ${prefix}`);
      for (const key of [...objects.keys()].filter((k) => k.startsWith(prefix)).sort()) {
        yield { key, size: objects.get(key)!.body.length };
      }
    },
    body: (key) => {
      const o = objects.get(key);
      return o && Buffer.from(o.body);
    },
    keys: () => [...objects.keys()].sort(),
    failNextPut(err, key) {
      putFailures.push({ err, ...(key !== undefined && { key }) });
    },
  };
}
