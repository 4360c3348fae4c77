/** `ftp-sync status`: a table per tenant, or the Status object as JSON with --json. */

import type { Command } from 'commander';
import { getStatus, type Status, type TenantStatus } from '../ops/status.js';
import { validationReportKey } from '../sync/metadata/report.js';
import { METADATA_SOURCES } from '../types.js';
import { configOption, examples, json, readConfig, stdout, withOps } from './common.js';
import {
  formatAgo,
  formatBytes,
  formatCount,
  formatDuration,
  type Style,
  table,
  truncate,
} from './render.js';

async function statusCommand(opts: { config?: string; org?: string; json?: boolean }): Promise<void> {
  // status never logs in to a source: it runs without the tenants' FTP passwords.
  const config = await readConfig(opts.config, { sourceCredentials: 'optional' });
  const status = await withOps(config, (ctx) => getStatus(ctx, { org: opts.org }));
  const out = stdout();
  if (opts.json) {
    out.line(json(status));
    return;
  }
  for (const line of renderStatus(status, out.style, Date.now())) out.line(line);
}

function health(t: TenantStatus, style: Style): string {
  if (!t.enabled) return style.dim('disabled');
  if (t.health === 'ok') return style.green('ok');
  if (t.health === 'degraded') {
    return style.yellow(`DEGRADED: missing ${truncate(t.missingDirs.join(', '), REASON_WIDTH - 17)}`);
  }
  if (t.health === 'unhealthy') {
    return style.red(`UNHEALTHY${t.reason ? `: ${truncate(t.reason, REASON_WIDTH)}` : ''}`);
  }
  return style.dim('unknown');
}

function lastPoll(t: TenantStatus, now: number): string {
  if (!t.lastPollAt) return 'never';
  const details = [t.lastPollMs !== undefined && formatDuration(t.lastPollMs)];
  if (t.lastPollFiles !== undefined) details.push(`${formatCount(t.lastPollFiles)} files`);
  const d = details.filter(Boolean).join(', ');
  return `${formatAgo(t.lastPollAt, now)}${d ? ` (${d})` : ''}`;
}

const REASON_WIDTH = 48;

/** When a failed after-sync action is tried again: at the first poll after its backoff. */
function retryIn(at: string, now: number): string {
  const ms = Date.parse(at) - now;
  return ms > 0 ? `retried after ${formatDuration(ms)}` : 'retried at the next poll';
}

const counted = (n: number, style: (s: string) => string) => (n ? style(formatCount(n)) : '0');

/** The lines of `status` for a terminal. */
export function renderStatus(s: Status, style: Style, now: number): string[] {
  const lines: string[] = [];
  if (!s.tenants.length) {
    return ['no tenants (add them to the configuration file, or: ftp-sync tenants add --help)'];
  }
  const rows = [
    ['ORG', 'HEALTH', 'LAST POLL', 'FILES', 'SYNCED', 'WAITING', 'ACTIVE', 'FAILED', 'PARKED'].map(
      style.bold,
    ),
    ...s.tenants.map((t) => [
      t.origin === 'onboarded' ? `${t.org} ${style.dim('(onboarded)')}` : t.org,
      health(t, style),
      lastPoll(t, now),
      formatCount(t.synced.files),
      formatBytes(t.synced.bytes),
      formatCount(t.jobs.waiting + t.jobs.delayed),
      formatCount(t.jobs.active),
      counted(t.jobs.failed, style.red),
      counted(t.parked.length, style.yellow),
    ]),
  ];
  lines.push(...table(rows, ['left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'right']));

  for (const t of s.tenants) {
    const details: string[] = [];
    if (t.health === 'unhealthy' && t.reason && [...t.reason].length > REASON_WIDTH) {
      details.push(`  unhealthy: ${t.reason}`);
    }
    if (t.health === 'degraded') {
      details.push(`  degraded: ${t.reason} (the other directories are synced)`);
    }
    if (t.unsyncable.count) {
      details.push(
        `  ${style.yellow(`${formatCount(t.unsyncable.count)} name(s) cannot be synced`)} (control characters, a newline, a / in the name): ${t.unsyncable.sample.join(', ')}${t.unsyncable.count > t.unsyncable.sample.length ? ', …' : ''}`,
      );
    }
    if (t.parked.length) {
      details.push(`  parked (${t.parked.length}):`);
      const parked = [...t.parked].sort((a, b) => a.path.localeCompare(b.path));
      for (const p of parked.slice(0, 20)) {
        details.push(
          `    ${p.path}  ${style.yellow(p.reason)}  since ${formatAgo(p.since, now)}${p.detail ? `  ${style.dim(p.detail)}` : ''}`,
        );
      }
      if (parked.length > 20) details.push(`    … and ${parked.length - 20} more`);
    }
    if (t.failures.length) {
      details.push(
        `  recent failures (${t.failures.length}${t.jobs.failed > t.failures.length ? ` of ${t.jobs.failed}` : ''}):`,
      );
      for (const f of t.failures) details.push(`    ${f.path}: ${style.red(f.reason)}`);
    }
    const bySource = METADATA_SOURCES.filter((k) => t.metadata[k]).map(
      (k) => `${k} ${formatCount(t.metadata[k])}`,
    );
    if (bySource.length) details.push(`  recordings by metadata source: ${bySource.join(', ')}`);
    if (t.manifests.length) {
      details.push('  manifests with row errors or in-place updates:');
      for (const m of t.manifests) {
        const updated = m.updated ? `, ${m.updated} synced recording(s) updated in place` : '';
        details.push(
          `    ${m.path}: ${m.errorCount} of ${m.rows} rows rejected (${m.accepted} accepted${updated}, ${formatAgo(m.at, now)}), report ${validationReportKey(m.key)}`,
        );
      }
    }
    if (t.afterSync.pending) {
      const a = t.afterSync;
      details.push(
        `  after-sync (${a.action}): ${a.pending} pending${a.failing ? `, ${style.red(`${a.failing} failing`)}` : ''}`,
      );
      if (a.lastError) {
        details.push(
          `    ${a.lastError.path}: ${style.red(a.lastError.message)} (${a.lastError.attempts} attempt(s), last ${formatAgo(a.lastError.at, now)}, ${retryIn(a.lastError.nextAttemptAt, now)})`,
        );
      }
    }
    if (t.lastError) {
      details.push(
        `  last error${t.lastError.at ? ` (${formatAgo(t.lastError.at, now)})` : ''}: ${t.lastError.message}`,
      );
    }
    if (details.length) lines.push('', style.bold(t.org), ...details);
  }

  const tot = s.totals;
  lines.push(
    '',
    `totals: ${tot.tenants} tenant(s)${tot.unhealthy ? `, ${style.red(`${tot.unhealthy} unhealthy`)}` : ''}${tot.degraded ? `, ${style.yellow(`${tot.degraded} degraded`)}` : ''}, ` +
      `${formatCount(tot.files)} files (${formatBytes(tot.bytes)}) synced, ${tot.parked} parked, ${tot.failed} failed`,
    `queues: sync ${queueCounts(s.queues.sync)}; poll ${queueCounts(s.queues.poll)}`,
  );
  return lines;
}

function queueCounts(c: Record<string, number>): string {
  const order = ['waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'];
  return order
    .filter((k) => c[k] !== undefined)
    .map((k) => `${k} ${formatCount(c[k] ?? 0)}`)
    .join(', ');
}

/** `status`. */
export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('per tenant: health, last poll, files synced, queued/active/failed/parked, errors')
    .addOption(configOption())
    .option('--org <id>', 'only this tenant')
    .option('--json', 'print the status as JSON (stable field names, for scripts)')
    .addHelpText(
      'after',
      examples(
        'ftp-sync status',
        'ftp-sync status --org acme',
        'ftp-sync status --json | jq \'.tenants[] | select(.health != "ok") | .org\'',
      ),
    )
    .action(statusCommand);
}
