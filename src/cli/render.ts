/**
 * Rendering for humans: colours, tables, sizes, durations and the progress bar. Pure functions of
 * their input (the clock and the terminal are passed in), so every command prints the same way.
 */

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

/** Colours only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function colourEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return Boolean(stream.isTTY) && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

const sgr = (on: number, off: number) => (s: string) => `\x1b[${on}m${s}\x1b[${off}m`;
const plain = (s: string) => s;

export function makeStyle(enabled: boolean): Style {
  if (!enabled) return { bold: plain, dim: plain, red: plain, green: plain, yellow: plain, cyan: plain };
  return {
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    red: sgr(31, 39),
    green: sgr(32, 39),
    yellow: sgr(33, 39),
    cyan: sgr(36, 39),
  };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escape sequences is the point
const ANSI = /\x1b\[[0-9;]*m/g;

export const stripAnsi = (s: string) => s.replace(ANSI, '');
/** Width on screen: escape sequences take none. (Wide CJK characters are counted as one.) */
const visibleWidth = (s: string) => [...stripAnsi(s)].length;

/** Cuts `s` (no escape sequences) to `max` characters, ending with `…` when cut. */
export function truncate(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
}

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * IEC units (powers of 1024), the one style of every size this program prints (CLI and demo), as the
 * configuration's `16MiB`/`10GiB` are written: 1023 B, 1.0 KiB, 45.1 MiB, 3.2 GiB.
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  if (n < 1024) return `${n} B`;
  let v = n / 1024;
  let i = 0;
  while (v >= 1023.95 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${BYTE_UNITS[i]}`;
}

/** `done/total` with the unit of the total: `45.1/80.0 MiB`. */
export function formatBytesOf(done: number, total: number): string {
  const t = formatBytes(total);
  const unit = t.split(' ')[1] ?? 'B';
  const scale = unit === 'B' ? 1 : 1024 ** (BYTE_UNITS.indexOf(unit) + 1);
  const d = unit === 'B' ? String(done) : (done / scale).toFixed(1);
  return `${d}/${t}`;
}

export const formatCount = (n: number) => n.toLocaleString('en-US');

/** 850 ms, 1.2 s, 2m 05s, 5m, 3h 07m, 1h, 2d 04h. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const two = (big: number, unit: string, small: number, smallUnit: string) =>
    small ? `${big}${unit} ${pad(small)}${smallUnit}` : `${big}${unit}`;
  if (s < 3600) return two(Math.floor(s / 60), 'm', s % 60, 's');
  if (s < 86_400) return two(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'm');
  return two(Math.floor(s / 86_400), 'd', Math.floor((s % 86_400) / 3600), 'h');
}

/** How long ago `at` (ISO or ms) was: `just now`, `12s ago`, `5m ago`, `3h ago`, `2d ago`. */
export function formatAgo(at: string | number | undefined, now: number): string {
  if (at === undefined) return 'never';
  const t = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(t)) return '?';
  const s = Math.round((now - t) / 1000);
  if (s < 0) return 'in the future';
  if (s < 2) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** A clock for ETAs: `0:11`, `12:04`, `1:02:03`; `--:--` when unknown. */
export function formatClock(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const pad = (n: number) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export type Align = 'left' | 'right';

/**
 * Lines of a table with columns padded to their widest cell (escape sequences do not count).
 * The last column is not padded, so lines carry no trailing spaces.
 */
export function table(rows: string[][], align: Align[] = [], gap = '  '): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visibleWidth(c));
    });
  }
  return rows.map((row) =>
    row
      .map((c, i) => {
        const fill = ' '.repeat((widths[i] ?? 0) - visibleWidth(c));
        if (align[i] === 'right') return fill + c;
        return i === row.length - 1 ? c : c + fill;
      })
      .join(gap)
      .trimEnd(),
  );
}

/** `[#####.....]` for a fraction from 0 to 1. */
function progressBar(fraction: number, width = 10): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.floor(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

export interface ProgressFigures {
  done: number;
  failed: number;
  parked: number;
  retrying: number;
  total: number;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * One line: `[#####.....] 120/200 files  45.1/80.0 MB  3.2 MB/s  ETA 0:11  failed 1`.
 * The bar counts bytes when there are any (one 2 GB file is most of the work), files otherwise.
 */
export function progressLine(p: ProgressFigures, bytesPerSecond: number | undefined, style: Style): string {
  const finished = p.done + p.failed + p.parked;
  const fraction = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.total ? finished / p.total : 1;
  const rate = bytesPerSecond !== undefined && bytesPerSecond > 0 ? bytesPerSecond : undefined;
  const eta = rate ? Math.max(0, p.bytesTotal - p.bytesDone) / rate : finished >= p.total ? 0 : undefined;
  const parts = [
    `${progressBar(fraction)} ${finished}/${p.total} files`,
    formatBytesOf(Math.min(p.bytesDone, p.bytesTotal), p.bytesTotal),
    rate ? `${formatBytes(Math.round(rate))}/s` : '-- B/s',
    `ETA ${formatClock(eta)}`,
  ];
  if (p.failed) parts.push(style.red(`failed ${p.failed}`));
  if (p.parked) parts.push(style.yellow(`parked ${p.parked}`));
  if (p.retrying) parts.push(`retrying ${p.retrying}`);
  return parts.join('  ');
}

/** Bytes per second over a sliding window of samples of a growing byte count. */
export function makeRateMeter(windowMs = 10_000) {
  const samples: { at: number; bytes: number }[] = [];
  return {
    sample(at: number, bytes: number): void {
      samples.push({ at, bytes });
      while (samples.length > 2 && at - samples[0]!.at > windowMs) samples.shift();
    },
    /** undefined until two samples span some time. */
    rate(): number | undefined {
      const first = samples[0];
      const last = samples.at(-1);
      if (!first || !last || last.at <= first.at) return undefined;
      return Math.max(0, ((last.bytes - first.bytes) * 1000) / (last.at - first.at));
    },
  };
}
