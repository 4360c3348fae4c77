/**
 * yauzl's random-access reader over `ObjectStore.getRange`: the archive is read by ranged GETs,
 * never staged on disk.
 *
 * Why it caches: yauzl reads the central directory one record at a time (46 bytes, then the name),
 * which over plain range reads would be two GETs per entry. So the first read (the end of the
 * archive, where yauzl looks for the end-of-central-directory record) fetches the whole tail, and
 * while the central directory is being read a read before the cached bytes fetches everything from
 * there to the cache in one GET (at most `maxCentralDirectoryBytes`): the central directory is read
 * once. After it (`centralDirectoryRead()`) the cache is dropped: a local header read fetches one
 * small block (the header and its name in one GET) and an entry's data is one streamed GET.
 * `readRange` is one GET handed out chunk by chunk (zip.ts reads a stored entry with it).
 */
import { PassThrough, type Readable } from 'node:stream';
import yauzl from 'yauzl';
import { PermanentError } from '../../errors.js';
import type { ObjectStore } from '../../ports/object-store.js';

/** yauzl's end-of-central-directory search: 22 bytes, a comment of up to 65,535, the zip64 locator. */
const TAIL_BYTES = 22 + 0xffff + 20;
/** A local header (30 bytes) plus its name and extra field nearly always fits in this. */
const HEADER_BLOCK = 4096;

export interface RangeReaderStats {
  /** Ranged GETs made so far (the central directory, local headers, entry data). */
  gets: number;
  /** Bytes asked for by those GETs. */
  bytes: number;
}

/** Reading the archive from the store failed (transient: the batch is retried and resumes). */
export class StoreReadError extends Error {
  override name = 'StoreReadError';
}

const storeError = (err: unknown) =>
  err instanceof StoreReadError
    ? err
    : new StoreReadError(`reading the archive from S3: ${(err as Error)?.message ?? err}`, { cause: err });

export class StoreRangeReader extends yauzl.RandomAccessReader {
  readonly stats: RangeReaderStats = { gets: 0, bytes: 0 };
  /** Cached bytes [cacheStart, cacheStart + cache.length) of the archive. */
  private cache: Buffer | undefined;
  private cacheStart = 0;
  private inDirectory = true;

  constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    private readonly size: number,
    private readonly maxDirectoryBytes: number,
  ) {
    super();
  }

  centralDirectoryRead(): void {
    this.inDirectory = false;
    this.cache = undefined;
  }

  private async fetch(start: number, end: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(end - start);
    // Bytes beyond the range asked for are not copied; the count below reports them.
    const got = await this.readRange(start, end, (chunk, at) => {
      if (at < buf.length) chunk.copy(buf, at);
    });
    if (got !== end - start) {
      throw new Error(`${this.key}: the store sent ${got} of ${end - start} bytes at ${start}`);
    }
    return buf;
  }

  /** One ranged GET, each chunk handed to `onChunk` with its offset from `start`; resolves at its end. */
  async readRange(start: number, end: number, onChunk: (chunk: Buffer, at: number) => void): Promise<number> {
    this.stats.gets += 1;
    this.stats.bytes += end - start;
    let at = 0;
    try {
      const body = await this.store.getRange(this.key, start, end);
      await new Promise<void>((resolve, reject) => {
        body.on('data', (c: Buffer) => {
          try {
            onChunk(c, at);
          } catch (err) {
            body.destroy();
            reject(err);
            return;
          }
          at += c.length;
        });
        body.once('error', (err) => reject(storeError(err)));
        body.once('end', resolve);
      });
    } catch (err) {
      if (err instanceof PermanentError) throw err;
      throw storeError(err);
    }
    return at;
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const out = new PassThrough();
    this.stats.gets += 1;
    this.stats.bytes += end - start;
    this.store.getRange(this.key, start, end).then(
      (body) => {
        body.on('error', (err) => out.destroy(storeError(err)));
        body.pipe(out);
        out.on('close', () => body.destroy());
      },
      (err) => out.destroy(storeError(err)),
    );
    return out;
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null) => void,
  ): void {
    this.readAsync(buffer, offset, length, position).then(
      () => callback(null),
      (err) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  }

  private async readAsync(buffer: Buffer, offset: number, length: number, position: number) {
    const end = position + length;
    const cached = this.cache;
    if (!cached || position < this.cacheStart || end > this.cacheStart + cached.length) {
      if (
        this.inDirectory &&
        cached &&
        position < this.cacheStart &&
        end <= this.cacheStart + cached.length
      ) {
        // The central directory lies before the tail: fetch it whole, once.
        if (this.cacheStart - position + cached.length > this.maxDirectoryBytes) {
          throw new PermanentError(
            `the central directory is larger than the limit of ${this.maxDirectoryBytes} bytes`,
          );
        }
        const before = await this.fetch(position, this.cacheStart);
        this.cache = Buffer.concat([before, cached]);
        this.cacheStart = position;
      } else if (this.inDirectory && !cached) {
        const start = Math.max(0, Math.min(position, this.size - TAIL_BYTES));
        this.cache = await this.fetch(start, Math.max(end, this.size));
        this.cacheStart = start;
      } else {
        const blockEnd = Math.min(this.size, Math.max(end, position + HEADER_BLOCK));
        this.cache = await this.fetch(position, blockEnd);
        this.cacheStart = position;
      }
    }
    const from = position - this.cacheStart;
    (this.cache as Buffer).copy(buffer, offset, from, from + length);
  }
}
