/**
 * `ftp-sync resync`: lists a tenant now, queues what is not in S3 (or everything matching, with
 * --force), releases its parked files, then follows the batch until every job is finished.
 * A running worker (`ftp-sync start`) does the transfers; this process only queues and watches.
 */
import type { Command } from 'commander';
import type { OpsContext } from '../ops/context.js';
import { type BatchProgress, batchProgress, type ResyncPlan, resync } from '../ops/resync.js';
import { configOption, examples, type Output, orgOption, readConfig, stdout, withOps } from './common.js';
import {
  formatBytes,
  formatClock,
  formatCount,
  makeRateMeter,
  progressLine,
  stripAnsi,
  truncate,
} from './render.js';

/** Exit codes of `resync` (also in its --help). */
const RESYNC_EXIT = { ok: 0, failed: 1, parked: 3, interrupted: 130 } as const;

export interface ResyncCommandOptions {
  config?: string;
  org: string;
  path?: string;
  since?: string;
  force?: boolean;
  dryRun?: boolean;
  wait: boolean;
}

const SHOWN = 20;
/** On a terminal the line is redrawn on every look; elsewhere a line is printed this often. */
const LOG_EVERY_MS = 5_000;

async function resyncCommand(opts: ResyncCommandOptions): Promise<void> {
  const config = await readConfig(opts.config);
  const out = stdout();
  process.exitCode = await withOps(config, async (ctx) => {
    const plan = await resync(ctx, {
      org: opts.org,
      path: opts.path,
      since: opts.since,
      force: opts.force,
      dryRun: opts.dryRun,
    });
    if (opts.dryRun) {
      printDryRun(out, plan, (await ctx.state.parked(plan.org)).length, opts.force);
      return RESYNC_EXIT.ok;
    }
    out.line(
      `queued ${formatCount(plan.jobIds.length)} file(s) (${formatBytes(plan.bytes)}) of ${plan.org} as batch ${plan.batch}` +
        `${plan.skipped ? `; ${formatCount(plan.skipped)} already in S3, skipped` : ''}` +
        `${plan.released ? `; ${plan.released} parked file(s) released` : ''}`,
    );
    if (!plan.jobIds.length) {
      out.line(
        plan.skipped ? 'nothing to do (use --force to upload them again)' : 'nothing to do: no file matches',
      );
      return RESYNC_EXIT.ok;
    }
    if (!opts.wait) {
      out.line(`not waiting: follow it with ftp-sync status --org ${plan.org}`);
      return RESYNC_EXIT.ok;
    }
    await warnWithoutWorker(ctx, out);
    const started = Date.now();
    const progress = await follow(ctx, plan, out);
    return summarise(out, plan, progress, Date.now() - started);
  });
}

function printDryRun(out: Output, plan: ResyncPlan, parked: number, force?: boolean): void {
  out.line(
    `dry run: would queue ${formatCount(plan.files.length)} file(s) (${formatBytes(plan.bytes)}) of ${plan.org}` +
      `${plan.skipped ? `; ${formatCount(plan.skipped)} already in S3 would be skipped` : ''}` +
      `${force ? ' (--force: uploaded again even when in S3)' : ''}`,
  );
  for (const f of plan.files.slice(0, SHOWN)) out.line(`  ${f.path}  ${out.style.dim(formatBytes(f.size))}`);
  if (plan.files.length > SHOWN) out.line(`  … and ${formatCount(plan.files.length - SHOWN)} more`);
  if (parked) out.line(`would release ${parked} parked file(s)`);
}

async function warnWithoutWorker(ctx: OpsContext, out: Output): Promise<void> {
  // CLIENT LIST may be refused (managed Redis): then nothing is said.
  const workers = await ctx.jobs.workers();
  if (workers === 0) {
    out.line(
      out.style.yellow('no worker is connected: the batch waits for one (start it with: ftp-sync start)'),
    );
  }
}

/** Polls the batch until it is finished (or Ctrl-C), drawing progress. */
async function follow(ctx: OpsContext, plan: ResyncPlan, out: Output): Promise<BatchProgress | undefined> {
  const meter = makeRateMeter();
  // Each look reads every job of the batch: look less often when the batch is large.
  const every = Math.min(10_000, 500 + plan.jobIds.length * 2);
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(RESYNC_EXIT.interrupted);
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  let lastLine = 0;
  let p: BatchProgress | undefined;
  try {
    for (;;) {
      p = await batchProgress(ctx, plan);
      const now = Date.now();
      meter.sample(now, p.bytesDone);
      const line = progressLine(p, meter.rate(), out.style);
      if (out.tty) {
        // A pseudo-terminal may report 0 columns.
        const width = out.columns && out.columns >= 40 ? out.columns : 120;
        const fitted = stripAnsi(line).length > width - 1 ? truncate(stripAnsi(line), width - 1) : line;
        out.write(`\r\x1b[2K${fitted}`);
      } else if (p.finished || now - lastLine >= LOG_EVERY_MS) {
        out.line(line);
        lastLine = now;
      }
      if (p.finished || interrupted) break;
      await new Promise((r) => setTimeout(r, every));
    }
  } finally {
    process.off('SIGINT', onSigint);
    if (out.tty) out.write('\n');
  }
  if (interrupted && !p?.finished) return undefined;
  return p;
}

function summarise(out: Output, plan: ResyncPlan, p: BatchProgress | undefined, ms: number): number {
  const { style } = out;
  if (!p) {
    out.line(
      `interrupted: the batch goes on in the worker (follow it with: ftp-sync status --org ${plan.org})`,
    );
    return RESYNC_EXIT.interrupted;
  }
  const outcomes = Object.entries(p.outcomes)
    .map(([k, n]) => `${n} ${k.replace(/-/g, ' ')}`)
    .join(', ');
  const rate = ms > 0 ? ` (${formatBytes(Math.round((p.bytesDone * 1000) / ms))}/s)` : '';
  out.line(
    `done: ${p.done} of ${p.total} file(s), ${formatBytes(p.bytesDone)} in ${formatClock(ms / 1000)}${rate}` +
      `${outcomes ? `: ${outcomes}` : ''}`,
  );
  if (p.failed) {
    out.line(style.red(`failed (${p.failed}):`));
    for (const f of p.failures) out.line(`  ${f.path}: ${f.reason}`);
  }
  if (p.parked) {
    out.line(
      style.yellow(
        `parked (${p.parked}): held back on purpose, not failed; the worker tries them again later`,
      ),
    );
    for (const f of p.parkedFiles) out.line(`  ${f.path}: ${f.reason}${f.detail ? ` (${f.detail})` : ''}`);
    out.line(`  release them again with: ftp-sync resync --org ${plan.org}`);
  }
  if (p.failed) return RESYNC_EXIT.failed;
  if (p.parked) return RESYNC_EXIT.parked;
  return RESYNC_EXIT.ok;
}

/** `resync`, its options and exit codes. */
export function registerResync(program: Command): void {
  program
    .command('resync')
    .description(
      'list a tenant now, queue what is not in S3 and release its parked files; then follow the batch',
    )
    .addOption(configOption())
    .addOption(orgOption())
    .option(
      '--path <glob>',
      'only paths matching this glob (relative to the source root, e.g. "calls/2024-03/**")',
    )
    .option('--since <date>', 'only files modified on or after this date (YYYY-MM-DD or ISO time)')
    .option('--force', 'queue every matching file, even those already in S3 (uploads them again)')
    .option('--dry-run', 'print what would be queued (count, size, the first paths) and queue nothing')
    .option('--no-wait', 'queue and exit without following the batch')
    .addHelpText(
      'after',
      `
A running worker (ftp-sync start, in another process) does the transfers; resync queues them and,
unless --no-wait, shows progress until every file is uploaded, failed or parked.

Exit codes:
  ${RESYNC_EXIT.ok}    every file uploaded (or already in S3)
  ${RESYNC_EXIT.failed}    some files failed (listed as path: reason)
  2    configuration error
  ${RESYNC_EXIT.parked}    none failed but some were parked (allocation exceeded, missing call metadata):
       held back on purpose and retried by the worker; a later resync releases them again
  ${RESYNC_EXIT.interrupted}  interrupted (Ctrl-C); the batch goes on in the worker
${examples(
  'ftp-sync resync --org acme --dry-run',
  'ftp-sync resync --org acme --path "calls/2024-03/**" --since 2024-03-01',
  'ftp-sync resync --org acme --force --no-wait',
)}`,
    )
    .action(resyncCommand);
}
