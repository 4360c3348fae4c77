/** Medians of the samples, the ratios the targets are stated in, and Markdown tables. */
import type { Corpus } from './corpus.js';
import { GiB, MiB } from './corpus.js';
import type { Sample, Tool } from './measure.js';

export function median(xs: number[]): number {
  if (!xs.length) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Figures {
  runs: number;
  wallS: number;
  mibPerS: number;
  filesPerS: number;
  cpuPerGiB: number;
  cpuS: number;
  rssMiB: number;
  s3rverCpuShare: number;
  machineBusy: number;
  ftpSessions: number;
}

/** Medians over the rounds of one tool on one corpus; undefined when it did not run. */
export function figures(samples: Sample[], tool: Tool, corpus: string): Figures | undefined {
  const s = samples.filter((x) => x.tool === tool && x.corpus === corpus);
  if (!s.length) return undefined;
  const m = (f: (x: Sample) => number) => median(s.map(f));
  return {
    runs: s.length,
    wallS: m((x) => x.wallMs / 1000),
    mibPerS: m((x) => x.bytes / MiB / (x.wallMs / 1000)),
    filesPerS: m((x) => x.files / (x.wallMs / 1000)),
    cpuPerGiB: m((x) => x.cpuSeconds / (x.bytes / GiB)),
    cpuS: m((x) => x.cpuSeconds),
    rssMiB: m((x) => (x.maxRssKiB * 1024) / MiB),
    s3rverCpuShare: m((x) => x.s3rverCpuSeconds / (x.wallMs / 1000)),
    machineBusy: m((x) => x.machineBusy),
    ftpSessions: Math.max(...s.map((x) => x.ftpSessions)),
  };
}

export function table(head: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.map(line)].join('\n');
}

export const fmt = (n: number | undefined, digits = 2): string =>
  n === undefined || !Number.isFinite(n) ? '–' : n >= 100 ? n.toFixed(0) : n.toFixed(digits);
export const pct = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? '–' : `${(n * 100).toFixed(0)}%`;

/** The per-tool table: one row per corpus and tool. */
export function transferTable(samples: Sample[], corpora: Corpus[]): string {
  const rows: (string | number)[][] = [];
  for (const c of corpora) {
    for (const tool of ['ftp-sync', 'ftp-sync (ref)', 'rclone', 'ftp-read', 's3-write'] as const) {
      const f = figures(samples, tool, c.name);
      if (!f) continue;
      rows.push([
        c.label,
        tool,
        f.runs,
        fmt(f.wallS),
        fmt(f.mibPerS, 1),
        fmt(f.filesPerS, 1),
        fmt(f.cpuPerGiB),
        fmt(f.rssMiB, 0),
        f.ftpSessions,
        pct(f.s3rverCpuShare),
        pct(f.machineBusy),
      ]);
    }
  }
  return table(
    [
      'corpus',
      'tool',
      'runs',
      'wall s',
      'MiB/s',
      'files/s',
      'CPU s/GiB',
      'peak RSS MiB',
      'FTP sessions',
      'S3 server CPU',
      'machine CPU',
    ],
    rows,
  );
}

export interface Verdict {
  what: string;
  value: string;
  target: string;
  met: boolean | undefined;
}

export function verdictTable(v: Verdict[]): string {
  return table(
    ['target', 'measured', 'wanted', 'met'],
    v.map((x) => [x.what, x.value, x.target, x.met === undefined ? '–' : x.met ? 'yes' : 'NO']),
  );
}

/** The targets, from the medians of the same run. */
export function verdicts(samples: Sample[], corpora: Corpus[]): Verdict[] {
  const out: Verdict[] = [];
  const f = (tool: Tool, c: string) => figures(samples, tool, c);
  for (const c of corpora) {
    const fs = f('ftp-sync', c.name);
    const rc = f('rclone', c.name);
    const fr = f('ftp-read', c.name);
    const sw = f('s3-write', c.name);
    if (!fs) continue;
    const ref = f('ftp-sync (ref)', c.name);
    if (ref) {
      // A restructuring keeps the figures: within 10 % of the reference build's, same run.
      const r =
        c.name === 'small' || c.name === 'tenants' ? fs.filesPerS / ref.filesPerS : fs.mibPerS / ref.mibPerS;
      out.push({
        what: `${c.label}: ${c.name === 'small' || c.name === 'tenants' ? 'files/s' : 'MiB/s'} vs the reference build`,
        value: `${fmt(r)}×`,
        target: '≥ 0.9×',
        met: r >= 0.9,
      });
      const cpu = fs.cpuPerGiB / ref.cpuPerGiB;
      out.push({
        what: `${c.label}: CPU s/GiB vs the reference build`,
        value: `${fmt(cpu)}×`,
        target: '≤ 1.1×',
        met: cpu <= 1.1,
      });
    }
    const limitFiles = fr && sw ? Math.min(fr.filesPerS, sw.filesPerS) : undefined;
    const limitMiB = fr && sw ? Math.min(fr.mibPerS, sw.mibPerS) : undefined;
    const perFile = c.name === 'small' || c.name === 'tenants';
    if (rc) {
      if (perFile) {
        const r = fs.filesPerS / rc.filesPerS;
        if (c.name === 'small')
          out.push({
            what: `${c.label}: files/s vs rclone`,
            value: `${fmt(r)}×`,
            target: '≥ 1.2×',
            met: r >= 1.2,
          });
        else
          out.push({
            what: `${c.label}: files/s vs rclone`,
            value: `${fmt(r)}×`,
            target: '(no target)',
            met: undefined,
          });
      } else {
        const r = fs.mibPerS / rc.mibPerS;
        out.push({
          what: `${c.label}: MiB/s vs rclone`,
          value: `${fmt(r)}×`,
          target: '≥ 1.0×',
          met: r >= 1.0,
        });
      }
      const cpu = fs.cpuPerGiB / rc.cpuPerGiB;
      out.push({
        what: `${c.label}: CPU s/GiB vs rclone`,
        value: `${fmt(cpu)}×`,
        target: '≤ 1.0×',
        met: cpu <= 1.0,
      });
    }
    if (limitFiles !== undefined && limitMiB !== undefined) {
      const share = perFile ? fs.filesPerS / limitFiles : fs.mibPerS / limitMiB;
      const wanted = c.name === 'small' ? 0.85 : c.name === 'tenants' ? 0.9 : undefined;
      out.push({
        what: `${c.label}: share of pipeline limit (${perFile ? 'files/s' : 'MiB/s'})`,
        value: pct(share),
        target: wanted ? `≥ ${pct(wanted)}` : '(no target)',
        met: wanted ? share >= wanted : undefined,
      });
    }
  }
  return out;
}

export function limitTable(samples: Sample[], corpora: Corpus[]): string {
  const rows: (string | number)[][] = [];
  for (const c of corpora) {
    const fs = figures(samples, 'ftp-sync', c.name);
    const fr = figures(samples, 'ftp-read', c.name);
    const sw = figures(samples, 's3-write', c.name);
    if (!fs || !fr || !sw) continue;
    const perFile = c.name === 'small' || c.name === 'tenants';
    const unit = (x: Figures) => (perFile ? x.filesPerS : x.mibPerS);
    const limit = Math.min(unit(fr), unit(sw));
    rows.push([
      c.label,
      perFile ? 'files/s' : 'MiB/s',
      fmt(unit(fr), 1),
      fmt(unit(sw), 1),
      unit(fr) < unit(sw) ? 'FTP read' : 'S3 write',
      fmt(unit(fs), 1),
      pct(unit(fs) / limit),
    ]);
  }
  return table(
    ['corpus', 'unit', 'FTP read alone', 'S3 write alone', 'limit is', 'ftp-sync', 'ftp-sync / limit'],
    rows,
  );
}
