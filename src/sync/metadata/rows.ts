/**
 * What every manifest format shares: finding the needed columns, checking one row, collecting the
 * usable rows and the row errors.
 */
import { z } from 'zod';
import type { MetadataConfig } from '../../config.js';
import { PermanentError } from '../../errors.js';
import { parseCallDate } from './dates.js';
import { recordingRef } from './resolve.js';
import { MAX_ROW_ERRORS, type ManifestResult, type ManifestRow, type RowError } from './types.js';

export type Field = 'file' | 'email' | 'date';
const FIELDS: readonly Field[] = ['file', 'email', 'date'];
const WHAT: Record<Field, string> = { file: 'recording', email: 'email', date: 'date of call' };

/** One cell of a row: the column name as written in the file, and its value. */
export interface Cell {
  column: string;
  value: unknown;
}
export type Cells = Partial<Record<Field, Cell>>;

/** Same check as `metadata.defaultEmail` in the configuration. */
const emailSchema = z.email();

const normaliseName = (name: string) =>
  name
    .replace(/^\uFEFF/, '')
    .trim()
    .toLowerCase();

/**
 * Finds the needed columns in a header (trimmed, case-insensitive; per field the first name of the
 * configured list that is present wins; a repeated column counts at its first position).
 * @throws PermanentError naming the missing columns and the expected names.
 */
export function matchHeader(
  header: readonly string[],
  config: MetadataConfig,
  file: string,
): Record<Field, number> {
  const position = new Map<string, number>();
  header.forEach((name, i) => {
    const key = normaliseName(name);
    if (!position.has(key)) position.set(key, i);
  });
  const found: Partial<Record<Field, number>> = {};
  const missing: Field[] = [];
  for (const field of FIELDS) {
    const name = config.columns[field].find((n) => position.has(normaliseName(n)));
    if (name === undefined) missing.push(field);
    else found[field] = position.get(normaliseName(name))!;
  }
  if (missing.length > 0) {
    const parts = missing.map(
      (f) => `no ${WHAT[f]} column (metadata.columns.${f}: ${config.columns[f].join(', ')})`,
    );
    const wanted = parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : parts[0];
    const seen = header.map((h) => JSON.stringify(h.trim())).join(', ') || 'nothing';
    const only = header.length === 1 ? header[0]! : '';
    const delimiter = [';', ',', '\t', '|'].find((d) => only.includes(d));
    const hint = delimiter
      ? `; the header reads as one column: is the delimiter ${JSON.stringify(delimiter)}? (metadata.delimiter)`
      : '';
    throw new PermanentError(`${file}: the header has ${wanted}; found ${seen}${hint}`);
  }
  return found as Record<Field, number>;
}

/** Picks the needed fields of a JSON object (keys trimmed, case-insensitive, as for a header). */
export function pickFields(obj: Record<string, unknown>, config: MetadataConfig): Cells {
  const keys = new Map<string, string>();
  for (const key of Object.keys(obj)) {
    const k = normaliseName(key);
    if (!keys.has(k)) keys.set(k, key);
  }
  const cells: Cells = {};
  for (const field of FIELDS) {
    for (const name of config.columns[field]) {
      const key = keys.get(normaliseName(name));
      if (key !== undefined) {
        cells[field] = { column: key, value: obj[key] };
        break;
      }
    }
  }
  return cells;
}

/** Collects the rows of one manifest: usable rows by recording key, and row errors. */
export function makeRowCollector(manifest: string, config: MetadataConfig) {
  const rows = new Map<string, ManifestRow>();
  const errors: RowError[] = [];
  let errorCount = 0;
  let rowCount = 0;

  function error(e: RowError): void {
    errorCount++;
    if (errors.length < MAX_ROW_ERRORS) {
      errors.push(
        e.value !== undefined && e.value.length > 200 ? { ...e, value: `${e.value.slice(0, 200)}…` } : e,
      );
    }
  }

  /** A whole row refused before its cells are looked at (wrong number of fields, not an object). */
  function reject(line: number, message: string, value?: string): void {
    rowCount++;
    error(value === undefined ? { line, message } : { line, message, value });
  }

  /** Checks one data row and keeps it when it is usable. */
  function add(line: number, cells: Cells): void {
    rowCount++;
    const problems: RowError[] = [];
    const text: Partial<Record<Field, string>> = {};
    for (const field of FIELDS) {
      const cell = cells[field];
      const column = cell?.column ?? config.columns[field][0] ?? field;
      const value = cell?.value;
      if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) {
        problems.push({ line, field: column, message: `missing ${WHAT[field]}` });
      } else if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) {
        text[field] = String(value).trim();
      } else {
        const shown = JSON.stringify(value);
        problems.push({ line, field: column, value: shown, message: `${WHAT[field]} must be text` });
      }
    }
    const column = (f: Field) => cells[f]?.column ?? f;
    let key: string | undefined;
    if (text.file !== undefined) {
      const ref = recordingRef(text.file);
      if ('error' in ref)
        problems.push({ line, field: column('file'), value: text.file, message: ref.error });
      else key = ref.key;
    }
    if (text.email !== undefined && !emailSchema.safeParse(text.email).success) {
      problems.push({ line, field: column('email'), value: text.email, message: 'not an email address' });
    }
    let dateOfCall: string | undefined;
    if (text.date !== undefined) {
      try {
        dateOfCall = parseCallDate(text.date, config.dateFormat);
      } catch (err) {
        problems.push({ line, field: column('date'), value: text.date, message: (err as Error).message });
      }
    }
    if (problems.length > 0 || key === undefined || dateOfCall === undefined || text.email === undefined) {
      for (const p of problems) error(p);
      return;
    }
    const row: ManifestRow = { email: text.email, dateOfCall, line, file: text.file!, manifest };
    const earlier = rows.get(key);
    if (!earlier) {
      rows.set(key, row);
    } else if (earlier.email !== row.email || earlier.dateOfCall !== row.dateOfCall) {
      error({
        line,
        field: column('file'),
        value: row.file,
        message: `recording ${JSON.stringify(key)} already has a row at line ${earlier.line} with a different email or date; this row is ignored`,
      });
    }
    // The same recording twice with the same values is harmless: the first row stands.
  }

  function result(complete: boolean): ManifestResult {
    return { rows, errors, errorCount, rowCount, complete };
  }

  return { add, reject, error, result };
}

export type RowCollector = ReturnType<typeof makeRowCollector>;
