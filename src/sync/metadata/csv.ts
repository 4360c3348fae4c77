/**
 * CSV and TSV manifests, streamed through csv-parse.
 *
 * Records are read as arrays and the header is matched here (rather than with csv-parse's
 * `columns`), so a row with more or fewer fields than the header is seen as such and reported,
 * instead of silently losing or shifting cells.
 *
 * Line numbers are counted here too: csv-parse's `info.lines` counts a CRLF inside a quoted cell as
 * two lines (it bumps the counter on each of `\r` and `\n`), so it drifts after the first multi-line
 * cell of a Windows file; and `info: true` halves the parser's speed. Instead blank lines are not
 * skipped by the parser, so every line break outside quotes ends a record: a row starts on the line
 * after the previous record ends, and ends as many lines later as its cells hold line breaks (those
 * only occur in quoted cells, and are kept verbatim). Blank records are then skipped here.
 * The record delimiter is set to any of CRLF, LF and CR, so a file that mixes them still reads
 * line by line (auto-detection would fix on the first one it sees).
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CsvError, parse } from 'csv-parse';
import type { MetadataConfig } from '../../config.js';
import { type Cells, type Field, matchHeader, type RowCollector } from './rows.js';
import { makeUtf8Checker } from './utf8.js';

const BREAKS = /\r\n|\r|\n/g;
/** Longest row, in characters; a longer one is a syntax error (a quote never closed, most likely). */
const MAX_RECORD_SIZE = 256 * 1024;

/** Reads a delimited manifest into `rows`. Resolves `false` when a syntax error stopped it early. */
export async function readDelimited(
  input: Readable,
  opts: { fileName: string; config: MetadataConfig; delimiter: string; rows: RowCollector },
): Promise<boolean> {
  const { fileName, config, delimiter, rows } = opts;
  const utf8 = makeUtf8Checker(fileName);
  let lastEnd = 0; // the line the previous record ended on

  let header: string[] | undefined;
  let columns: Record<Field, number> | undefined;
  /** Called by the parser for each record, in order, before it reads further. */
  const onRecord = (record: string[]): null => {
    const line = lastEnd + 1;
    lastEnd = line + record.reduce((n, cell) => n + (cell.match(BREAKS)?.length ?? 0), 0);
    // Blank lines, and the `,,,` rows spreadsheets leave.
    if (record.every((cell) => cell.trim() === '')) return null;
    if (!header || !columns) {
      columns = matchHeader(record, config, fileName);
      header = record.map((name) => name.trim());
      return null;
    }
    if (record.length !== header.length) {
      const fields = `${record.length} field${record.length === 1 ? '' : 's'}`;
      rows.reject(line, `the row has ${fields}, the header has ${header.length}`, record.join(delimiter));
      return null;
    }
    const cells: Cells = {};
    for (const [field, i] of Object.entries(columns) as [Field, number][]) {
      cells[field] = { column: header[i]!, value: record[i] };
    }
    rows.add(line, cells);
    return null; // nothing is passed on: the rows are collected here
  };

  const parser = parse({
    bom: true,
    delimiter,
    // Bounds the memory a runaway quote can take before it is reported.
    max_record_size: MAX_RECORD_SIZE,
    // Rows are handled inside the parser, not downstream of it: records still queued in a stream
    // buffer would be dropped when a later syntax error destroys the stream, and a syntax error
    // must keep every row before it.
    on_record: onRecord,
    record_delimiter: ['\r\n', '\n', '\r'],
    relax_column_count: true,
    // A quote inside an unquoted cell (`O"Brien`) is kept as a character, as spreadsheets write it.
    relax_quotes: true,
  });
  parser.resume(); // it passes nothing on; flowing lets it end

  try {
    await pipeline(
      input,
      // Checks the bytes are UTF-8 on their way to the parser (csv-parse would replace bad bytes).
      async function* (source: AsyncIterable<Buffer | string>) {
        for await (const chunk of source) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          utf8.write(bytes);
          yield bytes;
        }
        utf8.end();
      },
      parser,
    );
    return true;
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    rows.error({
      line: lastEnd + 1,
      message: `malformed ${delimiter === '\t' ? 'TSV' : 'CSV'}: ${describe(err)}; the rest of the file was not read`,
    });
    return false;
  }
}

/** What went wrong, in words for the customer who made the file. */
function describe(err: CsvError): string {
  switch (err.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field is never closed';
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'a closing quote is followed by something other than a delimiter or a line end';
    case 'CSV_MAX_RECORD_SIZE':
      return `a row is longer than ${MAX_RECORD_SIZE} characters (a quote never closed?)`;
    default:
      return err.message;
  }
}
