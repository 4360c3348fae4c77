/**
 * The status page (`GET /status` of the admin server): what `ftp-sync status` computes (ops/status.ts),
 * as one server-rendered HTML page that reads on a phone and reloads itself every few seconds (a meta
 * refresh: no script). Every value from the outside — tenant names, paths, error messages, reasons —
 * goes through `esc()`: a server's error text can hold anything.
 */
import { formatAgo, formatBytes, formatCount, formatDuration } from '../cli/render.js';
import type { BatchStatus, Status, TenantStatus } from '../ops/status.js';

/** @defaultValue 10 */
export interface StatusPageOptions {
  refreshSeconds?: number;
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text for HTML content and quoted attribute values. */
export const esc = (value: unknown): string => String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);

const n = (v: number) => formatCount(v);

function healthOf(t: TenantStatus): { word: string; cls: string } {
  if (!t.enabled) return { word: 'disabled', cls: 'dim' };
  return { word: t.health, cls: t.health };
}

function lastPoll(t: TenantStatus, now: number): string {
  if (!t.lastPollAt) return 'never';
  const extra = [
    t.lastPollMs !== undefined ? formatDuration(t.lastPollMs) : '',
    t.lastPollFiles !== undefined ? `${n(t.lastPollFiles)} files` : '',
  ]
    .filter(Boolean)
    .join(', ');
  return `<time datetime="${esc(t.lastPollAt)}">${esc(formatAgo(t.lastPollAt, now))}</time>${extra ? ` <small>(${esc(extra)})</small>` : ''}`;
}

function tenantRow(t: TenantStatus, now: number): string {
  const h = healthOf(t);
  const queued = t.jobs.waiting + t.jobs.delayed;
  return `<tr>
<td data-label="Tenant"><a href="#t-${esc(t.org)}">${esc(t.org)}</a></td>
<td data-label="Health"><span class="badge ${h.cls}">${esc(h.word)}</span></td>
<td data-label="Last poll">${lastPoll(t, now)}</td>
<td data-label="Synced" class="num">${n(t.synced.files)} <small>(${esc(formatBytes(t.synced.bytes))})</small></td>
<td data-label="Queued" class="num">${n(queued)}${t.jobs.active ? ` <small>+${n(t.jobs.active)} active</small>` : ''}</td>
<td data-label="Parked" class="num${t.parked.length ? ' warn' : ''}">${n(t.parked.length)}</td>
<td data-label="Failed" class="num${t.jobs.failed ? ' bad' : ''}">${n(t.jobs.failed)}</td>
</tr>`;
}

function list(items: string[]): string {
  return `<ul>${items.map((i) => `<li>${i}</li>`).join('')}</ul>`;
}

/** What to say about one tenant beyond its row: why it is not ok, parked files, recent errors. */
function tenantDetails(t: TenantStatus, now: number): string {
  const parts: string[] = [];
  if (t.reason) parts.push(`<p class="reason">${esc(t.reason)}</p>`);
  if (t.missingDirs.length) {
    parts.push(`<h3>Directories not found</h3>${list(t.missingDirs.map((d) => `<code>${esc(d)}</code>`))}`);
  }
  if (t.unsyncable.count) {
    parts.push(
      `<h3>Names that cannot be synced: ${n(t.unsyncable.count)}</h3>${list(t.unsyncable.sample.map((s) => `<code>${esc(s)}</code>`))}`,
    );
  }
  if (t.parked.length) {
    const shown = t.parked.slice(0, 20);
    parts.push(
      `<h3>Parked (${n(t.parked.length)})</h3>${list(
        shown.map(
          (p) =>
            `<code>${esc(p.path)}</code> — <b>${esc(p.reason)}</b>${p.detail ? `: ${esc(p.detail)}` : ''} <small>since ${esc(formatAgo(p.since, now))}</small>`,
        ),
      )}${t.parked.length > shown.length ? `<p><small>and ${n(t.parked.length - shown.length)} more (ftp-sync status --org)</small></p>` : ''}`,
    );
  }
  const errors: string[] = [];
  if (t.lastError) {
    errors.push(
      `${esc(t.lastError.message)}${t.lastError.at ? ` <small>${esc(formatAgo(t.lastError.at, now))}</small>` : ''}`,
    );
  }
  for (const f of t.failures.slice(0, 10)) errors.push(`<code>${esc(f.path)}</code>: ${esc(f.reason)}`);
  const a = t.afterSync.lastError;
  if (a) {
    errors.push(
      `after-sync ${esc(t.afterSync.action)} of <code>${esc(a.path)}</code> (${n(a.attempts)} attempts): ${esc(a.message)}`,
    );
  }
  if (errors.length) parts.push(`<h3>Recent errors</h3>${list(errors)}`);
  for (const m of t.manifests.filter((r) => r.errorCount > 0).slice(0, 5)) {
    parts.push(
      `<p>Manifest <code>${esc(m.path)}</code>: ${n(m.errorCount)} of ${n(m.rows)} rows rejected (ftp-sync status --org for the report)</p>`,
    );
  }
  if (!parts.length) return '';
  const h = healthOf(t);
  return `<section class="tenant" id="t-${esc(t.org)}"><h2>${esc(t.org)} <span class="badge ${h.cls}">${esc(h.word)}</span></h2>${parts.join('\n')}</section>`;
}

function batchRow(b: BatchStatus, now: number): string {
  const bytes =
    b.bytesTotal !== undefined
      ? ` <small>(${esc(formatBytes(b.bytesDone ?? 0))} of ${esc(formatBytes(b.bytesTotal))})</small>`
      : '';
  return `<tr>
<td data-label="Batch"><code>${esc(b.id)}</code> <small>${esc(b.kind)}</small></td>
<td data-label="Tenant">${esc(b.org)}</td>
<td data-label="Done" class="num">${n(b.done)} of ${n(b.total)}${bytes}</td>
<td data-label="Failed" class="num${b.failed ? ' bad' : ''}">${n(b.failed)}</td>
<td data-label="Parked" class="num">${n(b.parked)}</td>
<td data-label="Started">${b.startedAt ? esc(formatAgo(b.startedAt, now)) : ''}</td>
</tr>`;
}

const CSS = `
:root{color-scheme:light dark;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--dim:#6e7781;--line:#d0d7de}
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:12px;max-width:72rem}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin:.2rem 0 .4rem}h3{font-size:1rem;margin:.6rem 0 .2rem}
small,.meta{color:var(--dim)}
code{font-size:.9em;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
td.num,th.num{text-align:right}
.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;font-size:.85rem;font-weight:600;color:#fff;background:var(--dim)}
.badge.ok{background:var(--ok)}.badge.degraded{background:var(--warn)}.badge.unhealthy{background:var(--bad)}
.warn{color:var(--warn);font-weight:600}.bad{color:var(--bad);font-weight:600}
.totals{display:flex;flex-wrap:wrap;gap:.4rem 1rem;margin:.4rem 0 1rem;padding:0;list-style:none}
.totals li{white-space:nowrap}
section.tenant{border:1px solid var(--line);border-radius:8px;padding:.5rem .8rem;margin:.6rem 0}
section.tenant ul{padding-left:1.2rem;margin:.2rem 0}
.reason{margin:.2rem 0;font-weight:600}
@media (max-width:40rem){
  table,thead,tbody,tr,td{display:block;width:100%}
  thead{position:absolute;left:-9999px}
  tr{border:1px solid var(--line);border-radius:8px;margin:.5rem 0;padding:.3rem .5rem}
  td{border:0;padding:.15rem 0;text-align:right!important}
  td::before{content:attr(data-label);float:left;font-weight:600;color:var(--dim)}
}`;

/** The whole page for one Status. `now` makes "12 s ago" relative to when the status was read. */
export function renderStatusPage(s: Status, opts: StatusPageOptions = {}): string {
  const refresh = opts.refreshSeconds ?? 10;
  const now = Date.parse(s.generatedAt);
  const t = s.totals;
  const batches = s.batches ?? [];
  const details = s.tenants.map((x) => tenantDetails(x, now)).filter(Boolean);
  const queue = (q: Record<string, number>) =>
    ['waiting', 'prioritized', 'active', 'delayed', 'failed']
      .filter((k) => q[k])
      .map((k) => `${k} ${n(q[k]!)}`)
      .join(', ') || 'empty';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${refresh}">
<title>ftp-sync status${t.unhealthy ? ` (${t.unhealthy} unhealthy)` : ''}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>ftp-sync status</h1>
<p class="meta">As of <time datetime="${esc(s.generatedAt)}">${esc(s.generatedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</time>; reloads every ${refresh} s.</p>
<ul class="totals" aria-label="Totals">
<li><b>${n(t.tenants)}</b> tenants</li>
<li class="${t.unhealthy ? 'bad' : ''}"><b>${n(t.unhealthy)}</b> unhealthy</li>
<li class="${t.degraded ? 'warn' : ''}"><b>${n(t.degraded)}</b> degraded</li>
<li><b>${n(t.files)}</b> files synced (${esc(formatBytes(t.bytes))})</li>
<li class="${t.parked ? 'warn' : ''}"><b>${n(t.parked)}</b> parked</li>
<li class="${t.failed ? 'bad' : ''}"><b>${n(t.failed)}</b> failed</li>
</ul>
<p class="meta">Sync queue: ${esc(queue(s.queues.sync))}. Poll queue: ${esc(queue(s.queues.poll))}.</p>
</header>
<main>
<h2>Tenants</h2>
${
  s.tenants.length
    ? `<table aria-label="Tenants"><thead><tr><th>Tenant</th><th>Health</th><th>Last poll</th><th class="num">Synced</th><th class="num">Queued</th><th class="num">Parked</th><th class="num">Failed</th></tr></thead>
<tbody>${s.tenants.map((x) => tenantRow(x, now)).join('\n')}</tbody></table>`
    : '<p>No tenants configured.</p>'
}
<h2>Batches</h2>
${
  batches.length
    ? `<table aria-label="Batches"><thead><tr><th>Batch</th><th>Tenant</th><th class="num">Done</th><th class="num">Failed</th><th class="num">Parked</th><th>Started</th></tr></thead>
<tbody>${batches.map((b) => batchRow(b, now)).join('\n')}</tbody></table>`
    : '<p>No batches in progress.</p>'
}
${details.length ? `<h2>Attention</h2>\n${details.join('\n')}` : '<p>Nothing needs attention: no tenant is parked, failing or missing a directory.</p>'}
</main>
</body>
</html>
`;
}
