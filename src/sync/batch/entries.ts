/**
 * Which entries of an archive are expanded, ignored or rejected, and why. Pure: the central
 * directory in, decisions out, before a byte of entry data is read. A rejected entry never stops the
 * others; only limits on the archive as a whole (entry count, total uncompressed size) refuse it all.
 */
import { isCallRecord, isRecording } from '../metadata/resolve.js';

/** Safety limits of a batch (config `batch:`; each can be set per tenant). */
export interface BatchLimits {
  /** Largest archive accepted (bytes). */
  maxArchiveBytes: number;
  maxEntries: number;
  /** Largest sum of the uncompressed sizes of the entries to expand. */
  maxUncompressedBytes: number;
  /** An entry larger than `bombMinBytes` whose uncompressed:compressed ratio exceeds this is a zip bomb. */
  maxRatio: number;
  bombMinBytes: number;
  /** Largest central directory read into memory. */
  maxCentralDirectoryBytes: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = {
  maxArchiveBytes: 3 * 1024 ** 3,
  maxEntries: 10_000,
  maxUncompressedBytes: 8 * 1024 ** 3,
  maxRatio: 100,
  bombMinBytes: 1024 * 1024,
  maxCentralDirectoryBytes: 64 * 1024 * 1024,
};

/** What the central directory says of one entry (the zip reader's `ZipEntryInfo`). */
export interface EntryFacts {
  index: number;
  name: string;
  compressedSize: number;
  uncompressedSize: number;
  compressionMethod: number;
  encrypted: boolean;
  symlink: boolean;
  localHeaderOffset: number;
  nameLength: number;
}

export type RejectReason =
  | 'unsafe-name'
  | 'symlink'
  | 'encrypted'
  | 'unsupported-method'
  | 'zip-bomb'
  | 'overlapping'
  | 'duplicate-name'
  | 'nested-archive'
  | 'corrupt';

export type EntryDecision =
  | { index: number; name: string; action: 'expand'; kind: 'recording' | 'call-record' }
  | { index: number; name: string; action: 'ignore'; detail: string }
  | { index: number; name: string; action: 'reject'; reason: RejectReason; detail: string };

const METHODS: Record<number, string> = {
  1: 'shrink',
  6: 'implode',
  9: 'deflate64',
  12: 'bzip2',
  14: 'lzma',
  93: 'zstd',
  95: 'xz',
  98: 'ppmd',
  99: 'AES encryption',
};
const NESTED = /\.(zip|7z|rar|tar|tgz|gz|bz2|xz|zst|jar|cab)$/i;

/** Junk that macOS and Finder add: never call data, never reported as a problem. */
export function isJunk(name: string): boolean {
  const segments = name.split('/');
  const base = segments.at(-1) ?? '';
  return segments[0] === '__MACOSX' || base.startsWith('._') || base === '.DS_Store';
}

/**
 * Why an entry name cannot become a path: absolute (`/x`), a drive letter (`C:`), a backslash, a `..`
 * or `.` segment, an empty segment, a control character. Undefined when it is safe.
 */
export function unsafeEntryName(name: string): string | undefined {
  if (name === '') return 'empty name';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'control character in the name';
  if (name.includes('\\')) return 'backslash in the name';
  if (name.startsWith('/')) return 'absolute path';
  if (/^[A-Za-z]:/.test(name)) return 'drive letter';
  const segments = name.split('/');
  // A trailing `/` is a directory entry; handled before this is asked.
  for (const s of segments) {
    const folded = s.normalize('NFKC');
    if (folded === '..') return 'a ".." segment';
    if (folded === '.' || s === '') return 'an empty or "." segment';
    if (folded.includes('/') || folded.includes('\\')) return 'a segment that folds to a separator';
  }
  return undefined;
}

/** The name two entries collide on: NFC, then case folded. */
export const foldName = (name: string) => name.normalize('NFC').toLowerCase();

export interface Plan {
  decisions: EntryDecision[];
  /** Set when the archive as a whole is refused (the decisions are then empty). */
  refused?: string;
}

export function planEntries(entries: EntryFacts[], limits: BatchLimits): Plan {
  if (entries.length > limits.maxEntries) {
    return {
      decisions: [],
      refused: `${entries.length} entries, more than the limit of ${limits.maxEntries}`,
    };
  }
  const decisions: EntryDecision[] = [];
  const reject = (e: EntryFacts, reason: RejectReason, detail: string) =>
    decisions.push({ index: e.index, name: e.name, action: 'reject', reason, detail });

  // Overlap: each entry's local header plus its data must end before the next one starts (a
  // classic bomb points many entries at the same bytes).
  const overlapping = new Set<number>();
  const byOffset = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 0; i + 1 < byOffset.length; i++) {
    const a = byOffset[i] as EntryFacts;
    const b = byOffset[i + 1] as EntryFacts;
    if (a.localHeaderOffset + 30 + a.nameLength + a.compressedSize > b.localHeaderOffset) {
      overlapping.add(a.index);
      overlapping.add(b.index);
    }
  }
  const folded = new Map<string, number>();
  for (const e of entries) {
    if (e.name.endsWith('/') || isJunk(e.name)) continue;
    const f = foldName(e.name);
    folded.set(f, (folded.get(f) ?? 0) + 1);
  }

  for (const e of entries) {
    if (e.name.endsWith('/')) {
      decisions.push({ index: e.index, name: e.name, action: 'ignore', detail: 'directory' });
      continue;
    }
    if (isJunk(e.name)) {
      decisions.push({ index: e.index, name: e.name, action: 'ignore', detail: 'macOS metadata' });
      continue;
    }
    const unsafe = unsafeEntryName(e.name);
    if (unsafe) reject(e, 'unsafe-name', `${unsafe}: ${JSON.stringify(e.name)}`);
    else if (e.symlink) reject(e, 'symlink', 'symbolic links are not expanded');
    else if (e.encrypted) reject(e, 'encrypted', 'encrypted entries cannot be read');
    else if (e.compressionMethod !== 0 && e.compressionMethod !== 8) {
      const m = METHODS[e.compressionMethod];
      reject(
        e,
        'unsupported-method',
        `compression method ${e.compressionMethod}${m ? ` (${m})` : ''}; only stored and deflate are supported`,
      );
    } else if (overlapping.has(e.index)) reject(e, 'overlapping', 'its data overlaps another entry');
    else if (
      e.uncompressedSize > limits.bombMinBytes &&
      e.uncompressedSize > limits.maxRatio * Math.max(1, e.compressedSize)
    ) {
      reject(
        e,
        'zip-bomb',
        `${e.uncompressedSize} bytes from ${e.compressedSize}: ratio above ${limits.maxRatio}:1`,
      );
    } else if ((folded.get(foldName(e.name)) ?? 0) > 1) {
      reject(e, 'duplicate-name', 'another entry has the same name (after Unicode NFC and case folding)');
    } else if (NESTED.test(e.name))
      reject(e, 'nested-archive', 'archives inside an archive are not expanded');
    else if (isRecording(e.name))
      decisions.push({ index: e.index, name: e.name, action: 'expand', kind: 'recording' });
    else if (isCallRecord(e.name))
      decisions.push({ index: e.index, name: e.name, action: 'expand', kind: 'call-record' });
    else
      decisions.push({
        index: e.index,
        name: e.name,
        action: 'ignore',
        detail: 'not call data (neither a recording nor a call record, by extension)',
      });
  }
  const total = decisions
    .filter((d) => d.action === 'expand')
    .reduce((n, d) => n + (entries[d.index] as EntryFacts).uncompressedSize, 0);
  if (total > limits.maxUncompressedBytes) {
    return {
      decisions: [],
      refused: `${total} bytes uncompressed, more than the limit of ${limits.maxUncompressedBytes}`,
    };
  }
  return { decisions };
}
