/**
 * `ftp-sync batch import` and `ftp-sync batch status`: an operator's manual batch upload on a
 * customer's behalf, and what became of each batch and each of its entries.
 */
import type { Command } from 'commander';
import { makeLogger } from '../log.js';
import { type BatchStatus, batchStatus, importArchive } from '../ops/batch.js';
import type { BatchRecord } from '../ports/batches.js';
import { ENTRY_OUTCOMES } from '../ports/batches.js';
import { makeRoot, type Root } from '../root.js';
import { reportKey } from '../sync/batch/expand.js';
import { configOption, examples, json, orgOption, readConfig, stdout } from './common.js';
import { formatBytes } from './render.js';

/** Exit codes of `batch import`: like resync's. */
const BATCH_EXIT = { ok: 0, failed: 1, parked: 3 } as const;

async function withRoot<T>(file: string | undefined, fn: (root: Root) => Promise<T>): Promise<T> {
  const config = await readConfig(file, { sourceCredentials: 'optional' });
  const root = makeRoot(config, makeLogger({ level: 'error' }), { tenantCacheMs: 0 });
  try {
    return await fn(root);
  } finally {
    await root.close();
  }
}

const counts = (b: BatchRecord) =>
  ENTRY_OUTCOMES.filter((o) => b.counts[o] > 0)
    .map((o) => `${b.counts[o]} ${o}`)
    .join(', ') || 'no entries yet';

async function batchImportCommand(
  file: string,
  opts: { config?: string; org: string; wait?: boolean; timeout?: string },
): Promise<void> {
  const out = stdout();
  const code = await withRoot(opts.config, async (root) => {
    let last = 0;
    const record = await importArchive(root, opts.org, file, (sent, total) => {
      if (!out.tty || Date.now() - last < 200) return;
      last = Date.now();
      out.write(
        `\ruploading ${formatBytes(sent)} of ${formatBytes(total)} (${Math.floor((100 * sent) / total)}%)`,
      );
    });
    if (out.tty) out.write('\r\x1b[K');
    out.line(`batch ${record.id}: ${record.key} (${formatBytes(record.size)}) queued for expansion`);
    if (opts.wait === false) return BATCH_EXIT.ok;
    // A worker (ftp-sync start) expands it; follow its record until it settles.
    let shown = '';
    for (;;) {
      const b = await root.batches().get(record.id);
      if (b) {
        const line = `${b.state}: ${b.entries} entries; ${counts(b)}`;
        if (line !== shown) {
          if (out.tty) out.write(`\r\x1b[K${line}`);
          else out.line(line);
          shown = line;
        }
        if (b.state === 'done' || b.state === 'failed' || b.state === 'parked') {
          if (out.tty) out.line();
          if (b.reason) out.line(`reason: ${b.reason}`);
          out.line(`report: s3://${root.config.s3.bucket}/${reportKey(b.key)}`);
          return b.state === 'failed' || b.counts.rejected > 0
            ? BATCH_EXIT.failed
            : b.state === 'parked'
              ? BATCH_EXIT.parked
              : BATCH_EXIT.ok;
        }
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  });
  process.exitCode = code;
}

async function batchStatusCommand(
  id: string | undefined,
  opts: { config?: string; org?: string; json?: boolean },
): Promise<void> {
  const out = stdout();
  const list = await withRoot(opts.config, (root) => batchStatus(root, { id, org: opts.org }));
  if (opts.json) {
    out.line(json(id ? list[0] : list));
    return;
  }
  for (const line of renderBatches(list)) out.line(line);
}

function renderBatches(list: BatchStatus[]): string[] {
  if (list.length === 0) return ['no batches'];
  const lines: string[] = [];
  for (const { batch: b, entries } of list) {
    lines.push(`${b.id}  ${b.org}  ${b.state}  ${b.key}  ${b.entries} entries: ${counts(b)}`);
    if (b.reason) lines.push(`  reason: ${b.reason}`);
    for (const e of entries ?? []) {
      const why = [e.reason, e.detail].filter(Boolean).join(': ');
      lines.push(`  ${e.outcome.padEnd(9)} ${e.name}${why ? `  (${why})` : ''}`);
    }
  }
  return lines;
}

/** `batch import | status`, and the exit codes of import. */
export function registerBatch(program: Command): void {
  const batch = program
    .command('batch')
    .description('zip batches: import an archive, see what became of each entry');
  batch
    .command('import')
    .description('upload a zip (or use one already in S3) and queue its expansion; then follow it')
    .argument('<file>', 'a local .zip, or s3://<bucket>/<key> of one already in the configured bucket')
    .addOption(configOption())
    .addOption(orgOption())
    .option('--no-wait', 'queue and exit without following the batch')
    .addHelpText(
      'after',
      `
A running worker (ftp-sync start) expands the archive; import uploads it, queues it and, unless
--no-wait, follows it until every entry has an outcome.

Exit codes:
  ${BATCH_EXIT.ok}    every entry synced, a duplicate or ignored
  ${BATCH_EXIT.failed}    the archive was refused, or some entries were rejected (see batch status)
  2    configuration error
  ${BATCH_EXIT.parked}    some recordings were parked (allocation exceeded); the worker retries them
${examples('ftp-sync batch import --org acme export-2024-03.zip', 'ftp-sync batch import --org acme s3://calls/acme/uploads/export.zip')}`,
    )
    .action(batchImportCommand);
  batch
    .command('status')
    .description('batches (newest first) with counts by outcome; one batch with each entry and its reason')
    .argument('[id]', 'a batch id (b-<org>-<hash>)')
    .addOption(configOption())
    .option('--org <id>', 'only this tenant')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      examples('ftp-sync batch status --org acme', 'ftp-sync batch status b-acme-0123456789abcdef --json'),
    )
    .action(batchStatusCommand);
}
