/**
 * The validation report of a manifest: written next to its object as `<key>.errors.json`, so the
 * customer (and the operator) can see which rows were not used and why.
 */
import type { ManifestResult, RowError } from './types.js';

export interface ValidationReport {
  /** The manifest's path on the source. */
  file: string;
  /** Data rows read. */
  rows: number;
  /** Rows that give a recording its metadata. */
  accepted: number;
  /** All row errors; `errors` holds the first 1000 of them. */
  errorCount: number;
  errors: RowError[];
  /** False when a syntax error stopped the reading early (see the last error). */
  complete: boolean;
  /** ISO-8601 UTC */
  generatedAt: string;
  /**
   * Rows that matched recordings synced before this call record was indexed: their objects take the
   * row's metadata in place (`updated`: the object's metadata changed; false when it already had it).
   */
  matchedSynced?: { line: number; path: string; key: string; updated: boolean }[];
}

export function buildValidationReport(
  file: string,
  result: ManifestResult,
  now: Date = new Date(),
): ValidationReport {
  return {
    file,
    rows: result.rowCount,
    accepted: result.rows.size,
    errorCount: result.errorCount,
    errors: result.errors,
    complete: result.complete,
    generatedAt: now.toISOString(),
  };
}

/** The object key of a manifest's report. */
export function validationReportKey(manifestKey: string): string {
  return `${manifestKey}.errors.json`;
}
