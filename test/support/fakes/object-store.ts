/**
 * An in-memory `ObjectStore`: what the S3 adapter promises, without a server. Objects are whole
 * buffers; a stream body is stored only once it ended with exactly `size` bytes (invariant 1), so a
 * body that fails or runs short or long leaves nothing. `list` pages internally (`pageSize`) as S3
 * does, so callers that stop early see the same behaviour.
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

export interface FakeObjectStore extends ObjectStore {
  /** The stored objects by key (a live view, for assertions). */
  readonly objects: ReadonlyMap<string, StoredObject>;
}

const lowerKeys = (m: Record<string, string>) =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v]));

async function readBody(body: Readable, opts: PutOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    chunks.push(chunk);
    n += chunk.length;
    if (n > opts.size) throw new Error(`the body is longer than its declared ${opts.size} bytes`);
    opts.onProgress?.(n);
  }
  if (n !== opts.size) throw new Error(`the body ended ${opts.size - n} bytes short`);
  return Buffer.concat(chunks);
}

export function makeFakeObjectStore(opts: { pageSize?: number } = {}): FakeObjectStore {
  const pageSize = opts.pageSize ?? 1000;
  const objects = new Map<string, StoredObject>();
  return {
    objects,
    async head(key): Promise<ObjectHead | undefined> {
      const o = objects.get(key);
      if (!o) return undefined;
      return {
        size: o.body.length,
        etag: o.etag,
        metadata: { ...o.metadata },
        ...(o.contentType && { contentType: o.contentType }),
      };
    },
    async put(key, body, putOpts) {
      if (putOpts.signal?.aborted) throw putOpts.signal.reason;
      const bytes = Buffer.isBuffer(body) ? Buffer.from(body) : await readBody(body, putOpts);
      if (Buffer.isBuffer(body)) putOpts.onProgress?.(bytes.length);
      const etag = `"${createHash('md5').update(bytes).digest('hex')}"`;
      objects.set(key, {
        body: bytes,
        metadata: lowerKeys(putOpts.metadata),
        ...(putOpts.contentType && { contentType: putOpts.contentType }),
        etag,
      });
      return { etag };
    },
    async get(key) {
      const o = objects.get(key);
      if (!o) throw Object.assign(new Error(`NoSuchKey: ${key}`), { name: 'NoSuchKey' });
      return Readable.from([o.body]);
    },
    async delete(key) {
      objects.delete(key);
    },
    async replaceMetadata(key, metadata, contentType) {
      const o = objects.get(key);
      if (!o) throw Object.assign(new Error(`NoSuchKey: ${key}`), { name: 'NoSuchKey' });
      objects.set(key, {
        ...o,
        metadata: lowerKeys(metadata),
        ...(contentType ? { contentType } : {}),
      });
    },
    async *list(prefix) {
      const keys = [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
      for (let at = 0; at < keys.length; at += pageSize) {
        for (const key of keys.slice(at, at + pageSize)) {
          const o = objects.get(key);
          if (o) yield { key, size: o.body.length };
        }
      }
    },
  };
}
