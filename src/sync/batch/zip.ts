/**
 * Reading a zip archive straight from the object store, by ranged GETs: never staged on disk, memory
 * bounded by the central directory (itself capped) and one stream buffer per open entry. yauzl does
 * the spec (zip64, data descriptors, CP437/UTF-8 names, the Info-ZIP Unicode path field); this file
 * gives it a random-access reader over `ObjectStore.getRange`.
 *
 * Why the reader caches: yauzl reads the central directory one record at a time (46 bytes, then the
 * name), which over plain range reads would be two GETs per entry. So the first read (the end of the
 * archive, where yauzl looks for the end-of-central-directory record) fetches the whole tail, and
 * while the central directory is being read a read before the cached bytes fetches everything from
 * there to the cache in one GET (at most `maxCentralDirectoryBytes`): the central directory is read
 * once. After it (`centralDirectoryRead()`) the cache is dropped. A stored entry read into memory
 * (`readStored`) is one GET of its local header and data together; otherwise a local header read
 * fetches one small block (the header and its name in one GET) and the entry's data is one streamed
 * GET.
 *
 * yauzl does not check CRC-32s: `entryStream` does, and it holds the last chunk back until the CRC
 * matched, so a consumer (an upload body) never sees the end of a corrupt entry: it sees an error.
 */
import { PassThrough, type Readable, Transform } from 'node:stream';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import { PermanentError } from '../../errors.js';
import type { ObjectStore } from '../../ports/object-store.js';

/** yauzl's end-of-central-directory search: 22 bytes, a comment of up to 65,535, the zip64 locator. */
const TAIL_BYTES = 22 + 0xffff + 20;
/** A local header (30 bytes) plus its name and extra field nearly always fits in this. */
const HEADER_BLOCK = 4096;
/**
 * Bytes of a local header's extra field read with a stored entry's data in one GET: zip64 sizes,
 * timestamps and a Unicode path fit; a longer field costs a second GET, not an error.
 */
const LOCAL_EXTRA_GUESS = 1024;

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

class StoreRangeReader extends yauzl.RandomAccessReader {
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
    this.stats.gets += 1;
    this.stats.bytes += end - start;
    const chunks: Buffer[] = [];
    try {
      for await (const c of await this.store.getRange(this.key, start, end)) chunks.push(c as Buffer);
    } catch (err) {
      throw storeError(err);
    }
    const buf = Buffer.concat(chunks);
    if (buf.length !== end - start) {
      throw new Error(`${this.key}: the store sent ${buf.length} of ${end - start} bytes at ${start}`);
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

export interface ZipEntryInfo {
  /** Position in the central directory (0-based). */
  index: number;
  /** The name as decoded (UTF-8 when the flag says so or the Unicode path field is there, else CP437). */
  name: string;
  compressedSize: number;
  uncompressedSize: number;
  compressionMethod: number;
  crc32: number;
  encrypted: boolean;
  /** A Unix symlink (made on Unix, file type 0o120000 in the external attributes). */
  symlink: boolean;
  /** Where the entry's local header starts, and the length of its name (for the overlap check). */
  localHeaderOffset: number;
  nameLength: number;
  /** The entry's modification time (the DOS time, or the extended timestamp field when present). */
  modifiedAt: Date;
}

export interface OpenedZip {
  entries: ZipEntryInfo[];
  /** Entry count from the end-of-central-directory record. */
  entryCount: number;
  stats: RangeReaderStats;
  /** A stream of one entry's uncompressed bytes; errors (never ends) when its CRC-32 or size is wrong. */
  entryStream(entry: ZipEntryInfo): Promise<Readable>;
  /**
   * A stored (not compressed) entry's bytes read straight into `into` (its size): its local header
   * and its data in one ranged GET, no stream in between. Throws {@link EntryChecksumError} when its
   * local header, size or CRC-32 is wrong (then `into` holds no meaning).
   */
  readStored(entry: ZipEntryInfo, into: Buffer): Promise<void>;
  close(): void;
}

export interface OpenZipOptions {
  /** The archive is refused before its central directory is read when it lists more entries. */
  maxEntries: number;
  maxCentralDirectoryBytes: number;
}

/** A reason the archive as a whole cannot be read: not a zip, truncated, a bad central directory. */
export class CorruptArchiveError extends PermanentError {
  override name = 'CorruptArchiveError';
}

/** Too many entries, or too large: refused as a whole. */
export class ArchiveLimitError extends PermanentError {
  override name = 'ArchiveLimitError';
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

export async function openZip(
  store: ObjectStore,
  key: string,
  size: number,
  opts: OpenZipOptions,
): Promise<OpenedZip> {
  if (size < 22) throw new CorruptArchiveError(`not a zip archive (${size} bytes is too short)`);
  const archiveSize = size;
  const reader = new StoreRangeReader(store, key, size, opts.maxCentralDirectoryBytes);
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(reader, size, {
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
    });
  } catch (err) {
    throw new CorruptArchiveError(`not a readable zip archive: ${(err as Error).message}`, { cause: err });
  }
  if (zip.entryCount > opts.maxEntries) {
    zip.close();
    throw new ArchiveLimitError(`${zip.entryCount} entries, more than the limit of ${opts.maxEntries}`);
  }
  const raw: yauzl.Entry[] = [];
  const entries: ZipEntryInfo[] = [];
  try {
    for await (const e of zip.eachEntry()) {
      const nameRaw = e.fileName as unknown as Buffer;
      // strict: a backslash is kept (and the name refused), not read as a separator.
      const name = yauzl.getFileNameLowLevel(e.generalPurposeBitFlag, nameRaw, e.extraFields, true);
      raw.push(e);
      entries.push({
        index: entries.length,
        name,
        compressedSize: e.compressedSize,
        uncompressedSize: e.uncompressedSize,
        compressionMethod: e.compressionMethod,
        crc32: e.crc32,
        encrypted: e.isEncrypted(),
        symlink: e.versionMadeBy >> 8 === 3 && ((e.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK,
        localHeaderOffset: e.relativeOffsetOfLocalHeader,
        nameLength: e.fileNameLength,
        modifiedAt: e.getLastModDate({ timezone: 'UTC' }),
      });
    }
  } catch (err) {
    zip.close();
    if (err instanceof PermanentError) throw err;
    throw new CorruptArchiveError(`bad central directory: ${(err as Error).message}`, { cause: err });
  }
  reader.centralDirectoryRead();
  return {
    entries,
    entryCount: zip.entryCount,
    stats: reader.stats,
    async entryStream(entry) {
      const e = raw[entry.index] as yauzl.Entry;
      // What is not the store failing is this entry's bytes being wrong: corrupt, for good.
      const corrupt = (err: unknown) =>
        err instanceof StoreReadError || err instanceof PermanentError
          ? err
          : new EntryChecksumError(`corrupt entry: ${(err as Error)?.message ?? err}`, { cause: err });
      let data: Readable;
      try {
        data = await zip.openReadStreamPromise(e);
      } catch (err) {
        throw corrupt(err);
      }
      const checked = crcGate(entry);
      data.on('error', (err) => checked.destroy(corrupt(err)));
      return data.pipe(checked);
    },
    async readStored(entry, into) {
      if (entry.compressionMethod !== 0 || entry.encrypted || into.length !== entry.uncompressedSize) {
        throw new Error(`${entry.name}: not a stored entry of ${into.length} bytes`);
      }
      const size = entry.compressedSize;
      if (size !== entry.uncompressedSize) {
        throw new EntryChecksumError(
          `stored, but ${size} bytes compressed and ${entry.uncompressedSize} not`,
        );
      }
      // The local header is 30 bytes, its name and an extra field of its own length (which the central
      // directory does not give): ask for LOCAL_EXTRA_GUESS bytes of it, and the rest if it is longer.
      const start = entry.localHeaderOffset;
      const want = Math.min(archiveSize, start + 30 + entry.nameLength + LOCAL_EXTRA_GUESS + size);
      const head = Buffer.alloc(30);
      let dataAt = -1; // the data's offset from `start`, once the fixed header is in
      let copied = 0;
      const place = (chunk: Buffer, at: number) => {
        if (dataAt < 0) {
          if (at < 30) chunk.copy(head, at, 0, Math.min(chunk.length, 30 - at));
          if (at + chunk.length < 30) return;
          if (head.readUInt32LE(0) !== 0x04034b50) {
            throw new EntryChecksumError('corrupt entry: no local file header at its offset');
          }
          dataAt = 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
          if (start + dataAt + size > archiveSize) {
            throw new EntryChecksumError('corrupt entry: its data runs past the end of the archive');
          }
        }
        const from = Math.max(dataAt, at);
        const to = Math.min(at + chunk.length, dataAt + size);
        if (to > from) copied += chunk.copy(into, from - dataAt, from - at, to - at);
      };
      const got = await reader.readRange(start, want, place);
      if (got !== want - start) {
        throw new StoreReadError(`${key}: the store sent ${got} of ${want - start} bytes at ${start}`);
      }
      if (dataAt < 0) throw new EntryChecksumError('corrupt entry: its local header is cut short');
      if (copied < size) {
        // A local extra field longer than guessed: the rest of the data in a second GET.
        const from = start + dataAt + copied;
        const rest = size - copied;
        const more = await reader.readRange(from, from + rest, (chunk, at) => {
          chunk.copy(into, copied + at);
        });
        if (more !== rest)
          throw new StoreReadError(`${key}: the store sent ${more} of ${rest} bytes at ${from}`);
      }
      const crc = crc32(into) >>> 0;
      if (crc !== entry.crc32 >>> 0) {
        throw new EntryChecksumError(
          `CRC-32 mismatch: ${crc.toString(16).padStart(8, '0')}, expected ${(entry.crc32 >>> 0).toString(16).padStart(8, '0')}`,
        );
      }
    },
    close: () => zip.close(),
  };
}

/** The entry's CRC-32 (or size) did not match: it is corrupt. */
export class EntryChecksumError extends PermanentError {
  override name = 'EntryChecksumError';
}

/**
 * Passes an entry's bytes on, holding the latest chunk back; only at the end, with the CRC-32 and the
 * byte count right, does it let the last chunk through and end. Otherwise it errors instead.
 */
function crcGate(entry: ZipEntryInfo): Transform {
  let crc = 0;
  let count = 0;
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      crc = crc32(chunk, crc);
      count += chunk.length;
      const out = held;
      held = chunk;
      cb(null, out);
    },
    flush(cb) {
      if (count !== entry.uncompressedSize) {
        return cb(
          new EntryChecksumError(`${count} bytes, the central directory says ${entry.uncompressedSize}`),
        );
      }
      if (crc >>> 0 !== entry.crc32 >>> 0) {
        return cb(
          new EntryChecksumError(
            `CRC-32 mismatch: ${(crc >>> 0).toString(16).padStart(8, '0')}, expected ${(entry.crc32 >>> 0).toString(16).padStart(8, '0')}`,
          ),
        );
      }
      cb(null, held);
    },
  });
}
