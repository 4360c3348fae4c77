/**
 * Types of call metadata from manifests.
 *
 * - **manifest**: a call-record file (CSV, TSV, JSON, JSON Lines) in a tenant's directories whose
 *   rows name recordings with the agent's email and the date of the call.
 * - **recording reference**: the cell of a row that names a recording, either a file name
 *   (`a.wav`) or a path (`2024-03-05/a.wav`), normalised by `recordingRef`.
 * - **row error**: a row that cannot be used; it goes into the file's validation report and never
 *   stops the other rows.
 */

/** One usable row of a manifest. */
export interface ManifestRow {
  email: string;
  /** YYYY-MM-DD */
  dateOfCall: string;
  /** Source line (1-based) where the row starts. */
  line: number;
  /** The recording reference as written in the row (trimmed). */
  file: string;
  /** The manifest's file name, for logs and status. */
  manifest: string;
}

/** A row (or part of a file) that could not be used. */
export interface RowError {
  /** Source line (1-based) where the row starts. */
  line: number;
  message: string;
  /** The column (as named in the file) the problem is in, when there is one. */
  field?: string;
  /** The offending value, cut to 200 characters. */
  value?: string;
}

export interface ManifestResult {
  /**
   * Usable rows by recording key (`recordingRef(...).key`: NFC, `/`-separated, the file name alone
   * when the row names no directory). Look a recording up with `findManifestRow`.
   */
  rows: Map<string, ManifestRow>;
  /** The first `MAX_ROW_ERRORS` row errors, in file order. */
  errors: RowError[];
  /** All row errors, including those beyond `MAX_ROW_ERRORS`. */
  errorCount: number;
  /** Data rows read (header, blank lines and blank rows not counted). */
  rowCount: number;
  /**
   * False when a syntax error (an unclosed quote, say) stopped the reading: the rows before it are
   * kept, the error is the last entry of `errors`, and rows after it were not read.
   */
  complete: boolean;
}

/** Row errors kept per file; the rest are only counted, so a broken million-row file stays small. */
export const MAX_ROW_ERRORS = 1000;
