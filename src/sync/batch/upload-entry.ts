/**
 * Reading one zip entry into the store: its SHA-256 (the duplicate check), and its upload — up to
 * `bufferBytes`, read into a buffer (a stored entry straight from one ranged GET) and sent as one
 * PutObject signed with the SHA-256 computed on the way; above, a multipart upload completed only
 * after the CRC-32 matched. The buffers come from the batch's {@link EntryBuffers}, so a batch of
 * recordings reuses a few instead of one each.
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

const KiB = 1024;
const MiB = 1024 * KiB;
/** Below this an entry's buffer is an ordinary allocation (Node's pool serves the smallest). */
const POOLED_FROM = 64 * KiB;

/**
 * The buffers a batch's entries are read into, handed back after the entry's PutObject and
 * after-upload steps, and reused by the next entries. Without them every recording of ~3 MiB got a
 * buffer of its own that lived through its GET and its PUT: long enough to be promoted, so only a
 * full garbage collection freed it (dozens per minute of expansion, each asked for by the external
 * memory). A buffer is allocated rounded up (to 64 KiB, or to a MiB from a MiB on) so the next
 * entries of a similar size fit in it; `take` gives the smallest kept one that fits; at most `keep`
 * are kept (the smallest is dropped first), so memory stays at about one buffer per entry expanded at
 * once.
 */
export class EntryBuffers {
  private readonly free: Buffer[] = [];
  private readonly ours = new WeakSet<ArrayBufferLike>();

  constructor(private readonly keep: number) {}

  /** A buffer of exactly `size` bytes (its contents are not zeroed). */
  take(size: number): Buffer {
    if (size < POOLED_FROM) return Buffer.allocUnsafe(size);
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = (this.free[i] as Buffer).length;
      if (len >= size && (best < 0 || len < (this.free[best] as Buffer).length)) best = i;
    }
    if (best >= 0) return (this.free.splice(best, 1)[0] as Buffer).subarray(0, size);
    const granule = size >= MiB ? MiB : POOLED_FROM;
    const whole = Buffer.allocUnsafeSlow(Math.ceil(size / granule) * granule);
    this.ours.add(whole.buffer);
    return whole.subarray(0, size);
  }

  /** Hands back a buffer from {@link take} once nothing reads it any more (others are ignored). */
  give(buf: Buffer): void {
    if (!this.ours.has(buf.buffer)) return;
    this.free.push(Buffer.from(buf.buffer, 0, buf.buffer.byteLength));
    if (this.free.length > this.keep) {
      this.free.sort((a, b) => b.length - a.length);
      this.free.length = this.keep;
    }
  }

  /** Buffers kept for reuse (tests). */
  get kept(): number {
    return this.free.length;
  }
}

/** An entry read into memory: its bytes (CRC-32 and size checked) and their SHA-256. */
export interface ReadEntry {
  body: Buffer;
  sha256: string;
}

/**
 * Reads an entry of at most `bufferBytes` into one buffer of the size the central directory gives
 * (no list of chunks joined at the end, and no more bytes than announced); a larger one is streamed
 * by {@link uploadEntry} instead (undefined here). The buffer comes from `buffers` and goes back only
 * through the caller, after the entry's PutObject and after-upload steps succeeded: a failed
 * PutObject might still be reading it.
 */
export async function readEntry(
  zip: OpenedZip,
  entry: ZipEntryInfo,
  buffers: EntryBuffers,
  bufferBytes = 16 * 1024 * 1024,
): Promise<ReadEntry | undefined> {
  const size = entry.uncompressedSize;
  if (size > bufferBytes) return undefined;
  const body = buffers.take(size);
  const h = createHash('sha256');
  if (entry.compressionMethod === 0) {
    // Stored (as recordings nearly always are): straight from the response into the buffer.
    await zip.readStored(entry, body);
    h.update(body);
  } else {
    const stream = await zip.entryStream(entry);
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
  }
  return { body, sha256: h.digest('hex') };
}

/**
 * Puts an entry: as one PutObject of `read` (from {@link readEntry}; signed with its SHA-256), or,
 * when it was too large to read into memory, streamed as a multipart upload.
 */
export async function uploadEntry(
  store: ObjectStore,
  zip: OpenedZip,
  entry: ZipEntryInfo,
  key: string,
  metadata: Record<string, string>,
  read: ReadEntry | undefined,
): Promise<{ etag?: string; sha256: string; body?: Buffer }> {
  const size = entry.uncompressedSize;
  if (read) {
    const { etag } = await store.put(key, read.body, {
      size,
      metadata: { ...metadata, 'content-sha256': read.sha256 },
      sha256: read.sha256,
    });
    return { etag, sha256: read.sha256, body: read.body };
  }
  const h = createHash('sha256');
  // A multipart upload: completed only after the body ended, i.e. after the CRC-32 matched. The
  // SHA-256 is known only then, so it is not in the object's metadata (the content index has it).
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      cb(null, chunk);
    },
  });
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  const stream = await zip.entryStream(entry);
  const piped = pipeline(stream as Readable, hashing, body);
  piped.catch(() => {}); // surfaced through the put (the body errors)
  await store.put(key, body, { size, metadata });
  await piped;
  const after = await store.head(key);
  if (!after || after.size !== size) {
    throw new Error(
      `${key}: S3 reports ${after ? `${after.size} bytes` : 'no object'} after upload of ${size}`,
    );
  }
  return { etag: after.etag, sha256: h.digest('hex') };
}
