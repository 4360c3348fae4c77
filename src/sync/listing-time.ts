/**
 * The times a directory listing gives, in one place. MLSD gives exact UTC times (ISO here); LIST
 * gives a raw string: unix `Nov 23 18:42` (this year, server's timezone, no seconds) or
 * `Nov 23  2026` (older than six months), or DOS `11-23-26 06:42PM`.
 */

const MONTHS = 'jan feb mar apr may jun jul aug sep oct nov dec'.split(' ');

/** Month and day of a unix LIST time (`Nov 23 18:42` or `Nov 23  2026`), if it is one. */
export function listMonthDay(raw: string): string | undefined {
  const m = /^([A-Za-z]{3})\s+(\d{1,2})\s+(\d{1,2}:\d{2}|\d{4})$/.exec(raw.trim());
  if (!m || !MONTHS.includes(m[1]!.toLowerCase())) return undefined;
  return `${m[1]!.toLowerCase()} ${Number(m[2])}`;
}

/**
 * Best-effort date of a listing time, for the "file's mtime date" default: exact ISO times, unix
 * LIST (`Nov 23 18:42` — this year unless that is in the future — or `Nov 23  2026`) and DOS
 * (`11-23-26 06:42PM`).
 */
export function listingDate(mtime: string, now = new Date()): Date | undefined {
  const iso = Date.parse(mtime);
  if (/^\d{4}-\d{2}-\d{2}T/.test(mtime) && Number.isFinite(iso)) return new Date(iso);
  const unix = /^([A-Za-z]{3})\s+(\d{1,2})\s+(?:(\d{1,2}):(\d{2})|(\d{4}))$/.exec(mtime.trim());
  if (unix) {
    const month = MONTHS.indexOf(unix[1]!.toLowerCase());
    if (month < 0) return undefined;
    const day = Number(unix[2]);
    if (unix[5]) return new Date(Date.UTC(Number(unix[5]), month, day));
    let year = now.getUTCFullYear();
    if (Date.UTC(year, month, day) > now.getTime() + 86_400_000) year--;
    return new Date(Date.UTC(year, month, day, Number(unix[3]), Number(unix[4])));
  }
  const dos = /^(\d{2})-(\d{2})-(\d{2,4})\s/.exec(mtime.trim());
  if (dos) {
    const y = Number(dos[3]);
    return new Date(Date.UTC(y < 100 ? 2000 + y : y, Number(dos[1]) - 1, Number(dos[2])));
  }
  return undefined;
}
