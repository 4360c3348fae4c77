/**
 * Dates of calls, as written in manifests and file names, to `YYYY-MM-DD`.
 *
 * The rule: the configured `metadata.dateFormat` decides the order of day, month and year; nothing
 * is guessed. ISO 8601 (`2024-03-05`, `2024-03-05T10:00:00Z`) is accepted whatever the configured
 * format, because a four-digit year in front followed by `-` cannot be read two ways.
 *
 * Accepted, for each format (separators `/`, `-` or `.`, used consistently; day and month may have
 * one or two digits; the year always has four):
 * - `iso`:        `2024-03-05`, `20240305`
 * - `DD/MM/YYYY`: `05/03/2024`, `5.3.2024`, `05032024`
 * - `MM/DD/YYYY`: `03/05/2024`, `3-5-2024`, `03052024`
 * - `YYYY/MM/DD`: `2024/03/05`, `2024.3.5`, `20240305`
 * plus, after any of them, an optional time of day (`10:00`, `10:00:00.123`, `10:00 PM`), which is
 * ignored: the date is the one written. Only ISO timestamps may carry a zone (`Z`, `+02:00`); their
 * date is the date in UTC, so `2024-03-05T23:30:00-05:00` is `2024-03-06`.
 *
 * Rejected with a message that says why: two-digit years, day/month order that the configured format
 * does not settle (`05/03/2024` when the format is `iso`), impossible dates (`31/02/2024`), anything
 * else that does not have the configured shape.
 */
import type { MetadataConfig } from '../../config.js';

export type DateFormat = MetadataConfig['dateFormat'];

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

/** A time of day after a date; no zone (only ISO timestamps may carry one). */
const TIME = String.raw`(?:[T ]\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?(?:\s*([AaPp][Mm]))?)?`;
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/;
const DAY_FIRST = new RegExp(String.raw`^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})${TIME}$`);
const YEAR_FIRST = new RegExp(String.raw`^(\d{4})([/.-])(\d{1,2})\2(\d{1,2})${TIME}$`);
const COMPACT = /^(\d{8})$/;
const TWO_DIGIT_YEAR = /^\d{1,2}([/.-])\d{1,2}\1\d{2}(?:$|[T ])/;

const FORMAT_NAME: Record<DateFormat, string> = {
  iso: 'YYYY-MM-DD',
  'DD/MM/YYYY': 'DD/MM/YYYY',
  'MM/DD/YYYY': 'MM/DD/YYYY',
  'YYYY/MM/DD': 'YYYY/MM/DD',
};

/**
 * Reads a call date written in `format` (or in ISO 8601) and returns it as `YYYY-MM-DD`.
 * @throws Error with a message naming the input and the reason.
 */
export function parseCallDate(text: string, format: DateFormat): string {
  const input = text.trim();
  const shown = JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
  if (input === '') throw new Error('the date is empty');

  const iso = ISO.exec(input);
  if (iso) return fromIso(iso, shown);

  if (format === 'DD/MM/YYYY' || format === 'MM/DD/YYYY') {
    const m = DAY_FIRST.exec(input);
    if (m) {
      checkTime(m.slice(5), shown);
      const [a, b] = [Number(m[1]), Number(m[3])];
      return format === 'DD/MM/YYYY' ? ymd(Number(m[4]), b, a, shown) : ymd(Number(m[4]), a, b, shown);
    }
  } else if (format === 'YYYY/MM/DD') {
    const m = YEAR_FIRST.exec(input);
    if (m) {
      checkTime(m.slice(5), shown);
      return ymd(Number(m[1]), Number(m[3]), Number(m[4]), shown);
    }
  }
  const compact = COMPACT.exec(input)?.[1];
  if (compact) {
    const n = (from: number, to: number) => Number(compact.slice(from, to));
    if (format === 'DD/MM/YYYY') return ymd(n(4, 8), n(2, 4), n(0, 2), shown);
    if (format === 'MM/DD/YYYY') return ymd(n(4, 8), n(0, 2), n(2, 4), shown);
    return ymd(n(0, 4), n(4, 6), n(6, 8), shown);
  }
  throw new Error(diagnose(input, shown, format));
}

/** Why `input` is not a date in `format`: the most specific reason we can tell. */
function diagnose(input: string, shown: string, format: DateFormat): string {
  const expected = `expected ${FORMAT_NAME[format]}${format === 'iso' ? '' : ' or ISO YYYY-MM-DD'} (metadata.dateFormat is ${format})`;
  if (TWO_DIGIT_YEAR.test(input)) return `ambiguous date ${shown}: the year has two digits; ${expected}`;
  const dayFirst = DAY_FIRST.exec(input);
  if (dayFirst && format !== 'DD/MM/YYYY' && format !== 'MM/DD/YYYY') {
    const [a, b] = [Number(dayFirst[1]), Number(dayFirst[3])];
    if (a <= 12 && b <= 12 && a !== b) {
      return `ambiguous date ${shown}: it could be day/month or month/day; ${expected}`;
    }
    return `date ${shown} is not in the configured format: ${expected}; set metadata.dateFormat to DD/MM/YYYY or MM/DD/YYYY`;
  }
  if (YEAR_FIRST.test(input) && format !== 'YYYY/MM/DD') {
    return `date ${shown} is not in the configured format: ${expected}; set metadata.dateFormat to YYYY/MM/DD`;
  }
  return `malformed date ${shown}: ${expected}`;
}

function fromIso(m: RegExpExecArray, shown: string): string {
  const date = ymd(Number(m[1]), Number(m[2]), Number(m[3]), shown);
  const zone = m[7];
  if (m[4] === undefined) return date;
  const [h, min, s] = [Number(m[4]), Number(m[5]), Number(m[6] ?? 0)];
  if (h > 23 || min > 59 || s > 60) throw new Error(`malformed time in ${shown}`);
  if (zone === undefined || zone === 'Z' || zone === 'z') return date;
  const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
  const [zh, zm] = [Number(z[2]), Number(z[3] ?? 0)];
  if (zh > 23 || zm > 59) throw new Error(`malformed time zone in ${shown}`);
  const offset = (z[1] === '-' ? -1 : 1) * (zh * 60 + zm);
  const utc = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), h, min - offset);
  const d = new Date(utc);
  // Safe from Date.UTC's mapping of years 0–99 to 19xx: ymd above refused years below 1000.
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
}

/** `[hours, minutes, seconds, am/pm]` of the optional time after a date, when present. */
function checkTime([h, min, s, ampm]: (string | undefined)[], shown: string): void {
  if (h === undefined) return;
  const hours = Number(h);
  const ok = ampm ? hours >= 1 && hours <= 12 : hours <= 23;
  if (!ok || Number(min) > 59 || Number(s ?? 0) > 60) throw new Error(`malformed time in ${shown}`);
}

function ymd(year: number, month: number, day: number, shown: string): string {
  if (year < 1000) throw new Error(`impossible date ${shown}: year ${year}`);
  if (month < 1 || month > 12) throw new Error(`impossible date ${shown}: there is no month ${month}`);
  const days = daysInMonth(year, month);
  if (day < 1 || day > days) {
    throw new Error(`impossible date ${shown}: ${MONTHS[month - 1]} ${year} has ${days} days, not ${day}`);
  }
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** The UTC calendar date of a time, `YYYY-MM-DD`. */
export function utcDate(time: Date): string {
  return time.toISOString().slice(0, 10);
}
