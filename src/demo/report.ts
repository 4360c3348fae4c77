/**
 * What the demo prints: the progress line, the per-tenant summary and where to look. Pure functions
 * from what was observed to lines of text.
 */
// The CLI's formatter: one unit style (KiB, MiB) wherever ftp-sync prints a size.
import { formatBytes } from '../cli/render.js';
import type { ValidationReport } from '../sync/metadata/report.js';
import type { BucketObject } from './bucket.js';
import type { HttpEndpoint } from './http.js';
import type { DemoTenant } from './scenario.js';
import type { Snapshot } from './watch.js';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function progressLine(s: Snapshot, elapsedMs: number): string {
  const c = s.counts;
  const parts = [
    `synced ${c.synced}/${c.syncedExpected}`,
    `parked ${c.parked}/${c.parkedExpected}`,
    `failed ${c.failed}`,
  ];
  if (c.retrying) parts.push(`retrying ${c.retrying}`);
  return `  ${parts.join(' · ')} · ${seconds(elapsedMs)}`;
}

export interface SummaryInput {
  snapshot: Snapshot;
  tenants: DemoTenant[];
  /** Validation reports read from the bucket, by report key. */
  reports: Map<string, ValidationReport>;
  bucket: string;
}

export function summaryLines({ snapshot, tenants, reports, bucket }: SummaryInput): string[] {
  const out: string[] = ['Summary per tenant'];
  for (const t of tenants) {
    const st = snapshot.status.tenants.find((s) => s.org === t.org);
    out.push(`  ${t.org} — ${t.story}`);
    if (!st) {
      out.push('    (not in status)');
      continue;
    }
    out.push(`    synced    ${plural(st.synced.files, 'file')}, ${formatBytes(st.synced.bytes)}`);
    const byReason = new Map<string, typeof st.parked>();
    for (const p of st.parked) byReason.set(p.reason, [...(byReason.get(p.reason) ?? []), p]);
    if (!byReason.size) out.push('    parked    0');
    for (const [reason, list] of byReason) {
      out.push(`    parked    ${list.length} — ${reason}: ${list[0]?.detail ?? ''}`);
      for (const p of list.sort((a, b) => a.path.localeCompare(b.path)))
        out.push(`                ${p.path}`);
    }
    const manifests = Object.keys(t.manifests);
    const errors = st.manifests.reduce((n, m) => n + m.errorCount, 0);
    out.push(`    manifest  ${plural(errors, 'row error')}${manifests.length ? '' : ' (no manifest)'}`);
    for (const m of st.manifests) {
      out.push(
        `              ${m.path}: ${m.rows} rows, ${m.accepted} accepted, ${plural(m.errorCount, 'row error')}`,
      );
      const report = reports.get(`${m.key}.errors.json`);
      for (const e of report?.errors.slice(0, 3) ?? []) {
        const where = e.field ? `${e.field} ${JSON.stringify(e.value ?? '')}` : (e.value ?? '');
        out.push(`                line ${e.line}: ${where ? `${where}: ` : ''}${e.message}`);
      }
      out.push(`                report: s3://${bucket}/${m.key}.errors.json`);
    }
    out.push(`    failures  ${st.failures.length}`);
    for (const f of st.failures.slice(0, 5)) out.push(`                ${f.path}: ${f.reason}`);
    if (st.health === 'unhealthy') out.push(`    health    unhealthy: ${st.reason ?? ''}`);
    if (st.lastError && (st.failures.length || snapshot.counts.retrying)) {
      out.push(`    last error ${st.lastError.message}`);
    }
  }
  return out;
}

export interface WhereInput {
  bucket: string;
  endpoint: string;
  objects: BucketObject[];
  sample?: { key: string; metadata: Record<string, string> };
  configFile: string;
  logFile: string;
  follow: boolean;
  http: HttpEndpoint[];
  httpToken: string;
}

const SHOWN_KEYS = 10;

export function whereLines(w: WhereInput): string[] {
  const out = ['Where to look'];
  out.push(`  S3 bucket   s3://${w.bucket} at ${w.endpoint} (path-style; access key S3RVER, secret S3RVER)`);
  const width = Math.max(...w.objects.slice(0, SHOWN_KEYS).map((o) => String(o.size).length), 1);
  for (const o of w.objects.slice(0, SHOWN_KEYS))
    out.push(`      ${String(o.size).padStart(width)}  ${o.key}`);
  if (w.objects.length > SHOWN_KEYS)
    out.push(`      … ${w.objects.length - SHOWN_KEYS} more (${w.objects.length} objects)`);
  if (w.sample) {
    out.push(`    metadata of ${w.sample.key}:`);
    const m = w.sample.metadata;
    const shown = ['email', 'date-of-call', 'voice-id', 'metadata-source', 'org', 'source-size'];
    out.push(
      `      ${shown
        .filter((k) => m[k] !== undefined)
        .map((k) => `${k}=${m[k]}`)
        .join('  ')}`,
    );
  }
  out.push(`  status      npx tsx src/cli.ts status -c ${w.configFile}`);
  if (!w.follow) {
    out.push(
      '              (the sandbox is removed when the demo exits: run `npm run demo -- --follow` to try it)',
    );
  }
  out.push(`  daemon log  ${w.logFile} (level info)`);
  for (const h of w.http) {
    const how =
      h.name === 'metrics'
        ? `Prometheus text; header Authorization: Bearer ${w.httpToken}`
        : `${h.name === 'status' ? 'HTML, reloads itself' : 'Bull Board'}; any user name, password ${w.httpToken}`;
    const label = h.name === 'status' ? 'status page' : h.name;
    out.push(`  ${label.padEnd(11)} ${h.url} (${how})`);
  }
  return out;
}
