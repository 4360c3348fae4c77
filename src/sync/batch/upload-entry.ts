/**
 * Reading one zip entry into the store: its SHA-256 (the duplicate check), and its upload — one
 * PutObject of a buffer filled as the bytes come (signed with the SHA-256 computed on the way) up to
 * `bufferBytes`, a multipart upload completed only after the CRC-32 matched above.
 */
import { createHash } from 'node:crypto';
import { PassThrough, type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '../../ports/object-store.js';
import { EntryChecksumError, type OpenedZip, type ZipEntryInfo } from './zip.js';

/** The entry's SHA-256, read (not stored anywhere) from the archive. */
export async function hashEntry(zip: OpenedZip, entry: ZipEntryInfo): Promise<string> {
  const h = createHash('sha256');
  for await (const c of await zip.entryStream(entry)) h.update(c as Buffer);
  return h.digest('hex');
}

export async function uploadEntry(
  deps: { store: ObjectStore; bufferBytes?: number },
  zip: OpenedZip,
  entry: ZipEntryInfo,
  key: string,
  metadata: Record<string, string>,
): Promise<{ etag?: string; sha256: string; body?: Buffer }> {
  const size = entry.uncompressedSize;
  const h = createHash('sha256');
  const stream = await zip.entryStream(entry);
  if (size <= (deps.bufferBytes ?? 16 * 1024 * 1024)) {
    // One buffer of the size the central directory gives, filled as the bytes come (no list of
    // chunks joined at the end: one copy less to collect, and no more bytes than announced).
    const body = Buffer.allocUnsafe(size);
    let at = 0;
    for await (const c of stream) {
      const chunk = c as Buffer;
      if (at + chunk.length > size) {
        stream.destroy();
        throw new EntryChecksumError(`more than the ${size} bytes the central directory says`);
      }
      h.update(chunk);
      at += chunk.copy(body, at);
    }
    const sha256 = h.digest('hex');
    const { etag } = await deps.store.put(key, body, {
      size,
      metadata: { ...metadata, 'content-sha256': sha256 },
      sha256,
    });
    return { etag, sha256, body };
  }
  // A multipart upload: completed only after the body ended, i.e. after the CRC-32 matched. The
  // SHA-256 is known only then, so it is not in the object's metadata (the content index has it).
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      cb(null, chunk);
    },
  });
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  const piped = pipeline(stream as Readable, hashing, body);
  piped.catch(() => {}); // surfaced through the put (the body errors)
  await deps.store.put(key, body, { size, metadata });
  await piped;
  const after = await deps.store.head(key);
  if (!after || after.size !== size) {
    throw new Error(
      `${key}: S3 reports ${after ? `${after.size} bytes` : 'no object'} after upload of ${size}`,
    );
  }
  return { etag: after.etag, sha256: h.digest('hex') };
}
