/**
 * Reads a manifest (a call-record file) into its usable rows and its row errors.
 *
 * What stops a whole file (a `PermanentError`, never retried): an extension that is not a manifest,
 * bytes that are not UTF-8, a header without the needed columns, a JSON file that is neither an
 * array nor JSON Lines, a JSON array over 64 MiB. Everything about one row (missing or malformed
 * email, impossible or ambiguous date, not a recording, a wrong number of fields, a conflicting
 * duplicate) is a row error: the other rows are still used. A CSV syntax error (an unclosed quote)
 * keeps the rows before it and is reported as the last row error, with `complete: false`.
 * Errors of the input stream itself (a dropped FTP transfer) are passed on as they are.
 */
import type { Readable } from 'node:stream';
import type { MetadataConfig } from '../../config.js';
import { PermanentError } from '../../errors.js';
import { readDelimited } from './csv.js';
import { readJson } from './json.js';
import { extensionOf } from './resolve.js';
import { makeRowCollector } from './rows.js';
import type { ManifestResult } from './types.js';

export type { ManifestResult, ManifestRow, RowError } from './types.js';

export type ManifestFormat = 'csv' | 'tsv' | 'json' | 'jsonl';

const FORMATS: Record<string, ManifestFormat> = {
  csv: 'csv',
  tsv: 'tsv',
  json: 'json',
  jsonl: 'jsonl',
  ndjson: 'jsonl',
};

/** The manifest format of a file, by extension; `undefined` when it is not a call-record file. */
function manifestFormat(fileName: string): ManifestFormat | undefined {
  return FORMATS[extensionOf(fileName)];
}

/**
 * Parses one manifest. `fileName` names the file in messages and decides the format by extension;
 * `config.delimiter` overrides the delimiter of CSV and TSV files.
 */
export async function parseManifest(
  input: Readable,
  opts: { fileName: string; config: MetadataConfig },
): Promise<ManifestResult> {
  const { fileName, config } = opts;
  const format = manifestFormat(fileName);
  if (!format) {
    input.destroy();
    throw new PermanentError(
      `${fileName}: not a call-record file (expected .csv, .tsv, .json, .jsonl or .ndjson)`,
    );
  }
  const rows = makeRowCollector(fileName, config);
  if (format === 'csv' || format === 'tsv') {
    const delimiter = config.delimiter ?? (format === 'tsv' ? '\t' : ',');
    const complete = await readDelimited(input, { fileName, config, delimiter, rows });
    return rows.result(complete);
  }
  await readJson(input, { fileName, config, rows, lines: format === 'jsonl' });
  return rows.result(true);
}
