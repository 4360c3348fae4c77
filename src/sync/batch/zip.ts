/**
 * Reading a zip archive straight from the object store, by ranged GETs: never staged on disk, memory
 * bounded by the central directory (itself capped) and one stream buffer per open entry. yauzl does
 * the spec (zip64, data descriptors, CP437/UTF-8 names, the Info-ZIP Unicode path field) over the
 * random-access reader of range-reader.ts (the central directory read once, in one GET). A stored
 * entry read into memory (`readStored`) is one GET of its local header and data together; otherwise
 * the entry's data is one streamed GET through yauzl.
 *
 * yauzl does not check CRC-32s: `entryStream` does, and it holds the last chunk back until the CRC
 * matched, so a consumer (an upload body) never sees the end of a corrupt entry: it sees an error.
 */
import { type Readable, Transform } from 'node:stream';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import { PermanentError } from '../../errors.js';
import type { ObjectStore } from '../../ports/object-store.js';
import { type RangeReaderStats, StoreRangeReader, StoreReadError } from './range-reader.js';

export { StoreReadError } from './range-reader.js';

/**
 * Bytes of a local header's extra field read with a stored entry's data in one GET: zip64 sizes,
 * timestamps and a Unicode path fit; a longer field costs a second GET, not an error.
 */
const LOCAL_EXTRA_GUESS = 1024;

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
      const dataSize = entry.compressedSize;
      if (dataSize !== entry.uncompressedSize) {
        throw new EntryChecksumError(
          `stored, but ${dataSize} bytes compressed and ${entry.uncompressedSize} not`,
        );
      }
      // The local header is 30 bytes, its name and an extra field of its own length (which the central
      // directory does not give): ask for LOCAL_EXTRA_GUESS bytes of it, and the rest if it is longer.
      const start = entry.localHeaderOffset;
      const want = Math.min(size, start + 30 + entry.nameLength + LOCAL_EXTRA_GUESS + dataSize);
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
          if (start + dataAt + dataSize > size) {
            throw new EntryChecksumError('corrupt entry: its data runs past the end of the archive');
          }
        }
        const from = Math.max(dataAt, at);
        const to = Math.min(at + chunk.length, dataAt + dataSize);
        if (to > from) copied += chunk.copy(into, from - dataAt, from - at, to - at);
      };
      const got = await reader.readRange(start, want, place);
      if (got !== want - start) {
        throw new StoreReadError(`${key}: the store sent ${got} of ${want - start} bytes at ${start}`);
      }
      if (dataAt < 0) throw new EntryChecksumError('corrupt entry: its local header is cut short');
      if (copied < dataSize) {
        // A local extra field longer than guessed: the rest of the data in a second GET.
        const from = start + dataAt + copied;
        const rest = dataSize - copied;
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
