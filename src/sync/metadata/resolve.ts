/**
 * Call metadata of one recording: the agent's email and the date of the call, from (in this order)
 * a manifest row, the file name (`metadata.pattern`), or the tenant's defaults (`defaultEmail` and
 * the file's modification date in UTC). Pure: the worker looks the manifest row up, waits for it
 * when the tenant requires manifests, and parks the recording when it never comes.
 */
import { z } from 'zod';
import { AUDIO_EXTENSIONS, type MetadataConfig, RECORD_EXTENSIONS } from '../../config.js';
import type { CallMetadata } from '../../types.js';
import { parseCallDate, utcDate } from './dates.js';
import type { ManifestRow } from './types.js';

const AUDIO = new Set(AUDIO_EXTENSIONS);
const RECORDS = new Set(RECORD_EXTENSIONS);

/** Lower-case extension without the dot (`''` when none). */
export function extensionOf(path: string): string {
  const name = baseName(path);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}

/** A recording (audio file), by extension. */
export function isRecording(path: string): boolean {
  return AUDIO.has(extensionOf(path));
}

/** A call-record file (a possible manifest), by extension. */
export function isCallRecord(path: string): boolean {
  return RECORDS.has(extensionOf(path));
}

const baseName = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/**
 * Normalises the recording named in a manifest cell into the key rows are stored under.
 *
 * - NFC, so a name typed on macOS (NFD) matches the same name listed by another server;
 * - `\` is read as `/`; a Windows drive path (`C:\rec\a.wav`) names the recorder's own disk, not
 *   the FTP layout, so only its file name counts;
 * - leading `/` and `./` are dropped: `/calls/a.wav` and `calls/a.wav` are the same reference;
 * - a name alone (`a.wav`) matches that file in any directory; a path (`2024-03-05/a.wav`) matches
 *   only recordings whose path ends with it, which tells apart recorders that reuse file names
 *   in dated directories.
 * Refused: control characters, `..`, names without an audio extension (such a row could never
 * match a recording).
 */
export function recordingRef(cell: string): { key: string } | { error: string } {
  let s = cell.trim().normalize('NFC');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(s)) return { error: 'the recording name contains control characters' };
  s = s.replace(/\\/g, '/');
  if (/^[A-Za-z]:\//.test(s)) s = baseName(s);
  const segments = s.split('/').filter((seg) => seg !== '' && seg !== '.');
  if (segments.includes('..')) return { error: 'the recording path must not contain ..' };
  const name = segments.at(-1);
  if (name === undefined) return { error: 'missing recording' };
  if (!isRecording(name)) {
    return {
      error: `not a recording file name (expected one ending in ${AUDIO_EXTENSIONS.map((e) => `.${e}`).join(', ')})`,
    };
  }
  return { key: segments.join('/') };
}

/**
 * The keys under which a manifest row for `path` may be stored, most specific first: the whole
 * relative path, then each shorter tail, down to the file name.
 */
export function manifestKeys(path: string): string[] {
  const segments = path
    .normalize('NFC')
    .split('/')
    .filter((seg) => seg !== '' && seg !== '.');
  return segments.map((_, i) => segments.slice(i).join('/'));
}

/** The manifest row for a recording: the row naming its longest path tail, else its file name. */
export function findManifestRow(
  rows: ReadonlyMap<string, ManifestRow>,
  path: string,
): ManifestRow | undefined {
  for (const key of manifestKeys(path)) {
    const row = rows.get(key);
    if (row) return row;
  }
  return undefined;
}

const emailSchema = z.email();
const compiled = new Map<string, RegExp>();

/**
 * Reads email and date from a file name with `metadata.pattern` (named groups `email` and `date`,
 * matched against the file name without its directory, NFC).
 *
 * A pattern may have only one of the groups; the other then comes from the defaults.
 * @returns `undefined` when there is no pattern or it does not match; `{ error }` when it matches
 *   but a captured value is not usable (that is a claim about the call we cannot honour, so the
 *   recording is not given default values instead).
 */
export function fromPattern(
  fileName: string,
  config: MetadataConfig,
): { email?: string; dateOfCall?: string } | { error: string } | undefined {
  if (!config.pattern) return undefined;
  let re = compiled.get(config.pattern);
  if (!re) {
    re = new RegExp(config.pattern);
    compiled.set(config.pattern, re);
  }
  const name = baseName(fileName).normalize('NFC');
  const m = re.exec(name);
  if (!m) return undefined;
  const groups = m.groups ?? {};
  if (!('email' in groups) && !('date' in groups)) {
    return { error: 'metadata.pattern has no named group (?<email>…) or (?<date>…)' };
  }
  const out: { email?: string; dateOfCall?: string } = {};
  const email = groups.email?.trim();
  if (email) {
    if (!emailSchema.safeParse(email).success) {
      return { error: `file name ${JSON.stringify(name)}: ${JSON.stringify(email)} is not an email address` };
    }
    out.email = email;
  }
  const date = groups.date?.trim();
  if (date) {
    try {
      out.dateOfCall = parseCallDate(date, config.dateFormat);
    } catch (err) {
      return { error: `file name ${JSON.stringify(name)}: ${(err as Error).message}` };
    }
  }
  return out;
}

export type Resolution =
  | {
      ok: true;
      metadata: CallMetadata;
      /** A pattern matched but a captured value was unusable: that field is left unknown, said here. */
      warning?: string;
    }
  | { ok: false; reason: 'missing-metadata'; detail: string };

/**
 * The metadata of one recording: manifest row → file name pattern → defaults, each field only when
 * known (metadata is optional, as in the platform's own API). The date of call falls back to the
 * file's modification date only with `dateFromMtime` (on by default when `defaultEmail` is set).
 * Only `requireManifest` makes a missing manifest row a reason not to go on.
 */
export function resolveCallMetadata(input: {
  path: string;
  mtime?: Date;
  manifestRow?: ManifestRow;
  config: MetadataConfig;
}): Resolution {
  const { path, mtime, manifestRow, config } = input;
  if (manifestRow) {
    return {
      ok: true,
      metadata: { email: manifestRow.email, dateOfCall: manifestRow.dateOfCall, source: 'manifest' },
    };
  }
  if (config.requireManifest) {
    return { ok: false, reason: 'missing-metadata', detail: 'waiting for a manifest row' };
  }
  const fromName = fromPattern(path, config);
  if (fromName && 'error' in fromName) {
    // The name matched the pattern, so it makes a claim about this call that we cannot read: the
    // defaults (another agent, the file's date) would be a guess against it. Nothing is known.
    return { ok: true, metadata: { source: 'none' }, warning: fromName.error };
  }
  const named = fromName;
  const useMtime = config.dateFromMtime ?? config.defaultEmail !== undefined;
  const mtimeDate = useMtime && mtime && !Number.isNaN(mtime.getTime()) ? utcDate(mtime) : undefined;
  const email = named?.email ?? config.defaultEmail;
  const dateOfCall = named?.dateOfCall ?? mtimeDate;
  const source: CallMetadata['source'] =
    email === undefined && dateOfCall === undefined
      ? 'none'
      : email === undefined || dateOfCall === undefined
        ? 'partial'
        : named?.email !== undefined || named?.dateOfCall !== undefined
          ? 'pattern'
          : 'defaults';
  return {
    ok: true,
    metadata: {
      ...(email !== undefined && { email }),
      ...(dateOfCall !== undefined && { dateOfCall }),
      source,
    },
  };
}
