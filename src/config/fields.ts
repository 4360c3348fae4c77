/**
 * The building blocks of the configuration schema: durations and sizes as people write them, and
 * field types whose errors say what was expected and what was found.
 */
import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** `30s`, `5m`, `1h`, `500ms`, `1d` → milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  if (/^\s*-/.test(text)) throw new Error(`a duration cannot be negative, got ${JSON.stringify(text)}`);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(text);
  if (!m) throw new Error(`expected a duration like 30s, 5m or 1h, got ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * (UNITS[m[2]!.toLowerCase()] ?? 1));
}

/** `16MiB`, `5GB`, `1024` (bytes) → bytes. */
export function parseSize(text: string | number): number {
  if (typeof text === 'number') return text;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$/i.exec(text);
  if (!m) throw new Error(`expected a size like 16MiB or 5GB, got ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1));
}

export const got = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));

/**
 * A duration field. `zero` says what 0 means for this field: a string (the meaning, e.g. "no
 * minimum age") accepts it; absent, 0 is refused with `why` (what 0 would do), so the error tells
 * the user why that field needs more.
 */
export const duration = (opts: { zero?: string; why?: string } = {}) =>
  z.custom<string>().transform((v, ctx) => {
    if (typeof v !== 'string') {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 30s, 5m or 1h, got ${got(v)}` });
      return z.NEVER;
    }
    try {
      const ms = parseDuration(v);
      if (ms === 0 && opts.zero === undefined) {
        const why = opts.why ? ` (${opts.why})` : '';
        throw new Error(`expected a duration above 0${why}, got ${JSON.stringify(v)}`);
      }
      return ms;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

export const size = () =>
  z.custom<string | number>().transform((v, ctx) => {
    try {
      if (typeof v !== 'string' && typeof v !== 'number') throw new Error(`expected a size, got ${got(v)}`);
      const n = parseSize(v);
      if (n <= 0) throw new Error(`expected a positive size, got ${JSON.stringify(v)}`);
      return n;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/**
 * A rate such as `10MiB/s` (a size per second; the `/s` may be left out) → bytes per second, at
 * least `min`.
 */
export const rate = (min: number) =>
  z.custom<string | number>().transform((v, ctx) => {
    try {
      if (typeof v !== 'string' && typeof v !== 'number') throw new Error(`expected a rate, got ${got(v)}`);
      const text = typeof v === 'string' ? v.replace(/\s*\/\s*s\s*$/i, '') : v;
      let n: number;
      try {
        n = parseSize(text);
      } catch {
        throw new Error(`expected a rate like 10MiB/s or 500KB/s, got ${JSON.stringify(v)}`);
      }
      if (n < min)
        throw new Error(`expected a rate of at least ${min / 1024}KiB/s, got ${JSON.stringify(v)}`);
      return n;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** An integer in a range; numeric strings (from `${ENV}` expansion) are accepted. */
export const int = (min: number, max: number, what = 'a number') =>
  z.custom<unknown>().transform((v, ctx) => {
    const n = typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `expected ${what} from ${min} to ${max}, got ${got(v)}` });
      return z.NEVER;
    }
    return n;
  });

export const bool = () =>
  z.custom<unknown>().transform((v, ctx) => {
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    ctx.addIssue({ code: 'custom', message: `expected true or false, got ${got(v)}` });
    return z.NEVER;
  });

export const str = (what = 'a non-empty string') =>
  z.string({ error: (iss) => `expected ${what}, got ${got(iss.input)}` }).min(1, `expected ${what}`);
