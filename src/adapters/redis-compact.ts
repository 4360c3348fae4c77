/**
 * Compact sync state in Redis: the encodings of a sync record and a manifest row, and the Lua of the
 * bucketed tables that hold them.
 *
 * A tenant with a million synced files must not cost a million hash-table entries (some 100 bytes
 * of overhead each before any data). Records live instead in many small hashes, "buckets", each kept
 * under Redis's listpack limits (`hash-max-listpack-entries` 128, `hash-max-listpack-value` 64 bytes
 * by default) so Redis stores each bucket as one packed array: a few bytes of overhead per entry.
 *
 * The buckets of one table grow by **linear hashing**: a table starts with one bucket; whenever it
 * holds more than `LOAD` entries per bucket on average, the next bucket in turn is split in two (its
 * entries rehashed one bit further). No bucket is ever rebuilt at once, every split moves at most a
 * bucket's worth of entries, and a bucket never holds much more than twice the average — at most
 * 2 × 44 = 88 on average, so well under 128 with the spread of a hash. A bucket is addressed by the
 * first 32 bits of the SHA-1 of the field: only Lua (`redis.sha1hex`) computes it, always together
 * with the table's level and split pointer read in the same script, so a reader never sees a table
 * half split.
 *
 * Keys of a table `t` (`sv`: synced records, `mr`: manifest rows) of a tenant, all in its slot:
 *   <prefix>:{<org>}:lh        hash  t:l (level), t:s (split pointer), t:n (entries)
 *   <prefix>:{<org>}:<t>:<i>   hash  field → packed value, i in 0 … 2^l + s − 1
 *
 * A field longer than 64 bytes (a path that long) makes its bucket a hash table: correct, costlier.
 */
import type { IndexedRow } from '../ports/sync-state.js';
import type { SyncRecord } from '../types.js';

/** Average entries per bucket above which the table splits its next bucket. */
const LOAD = 44;

/** Separator of the packed fields (a unit separator: never in a size, time or e-mail). */
const SEP = '\x1f';

/**
 * The Lua shared by every script touching a bucketed table. KEYS[1] is the tenant's `lh` meta hash;
 * a table is named by `t` and its buckets' key prefix `base` (passed as a key, for cluster routing).
 */
export const LH_LUA = `
local META = KEYS[1]
local LOAD = ${LOAD}
local function lh_hash(f) return tonumber(string.sub(redis.sha1hex(f), 1, 8), 16) end
local function lh_params(t)
  local m = redis.call('HMGET', META, t .. ':l', t .. ':s')
  return tonumber(m[1] or '0') or 0, tonumber(m[2] or '0') or 0
end
local function lh_bucket(base, h, l, s)
  local n = 2 ^ l
  local b = h % n
  if b < s then b = h % (2 * n) end
  return base .. string.format('%d', b)
end
local function lh_count(t) return tonumber(redis.call('HGET', META, t .. ':n') or '0') or 0 end
local function lh_split(base, t, l, s)
  local n = 2 ^ l
  local from = base .. string.format('%d', s)
  local to = base .. string.format('%d', s + n)
  local all = redis.call('HGETALL', from)
  local moved, fields = {}, {}
  for i = 1, #all, 2 do
    if lh_hash(all[i]) % (2 * n) ~= s then
      moved[#moved + 1] = all[i]
      moved[#moved + 1] = all[i + 1]
      fields[#fields + 1] = all[i]
    end
  end
  if #fields > 0 then
    redis.call('HSET', to, unpack(moved))
    redis.call('HDEL', from, unpack(fields))
  end
  s = s + 1
  if s >= n then
    l = l + 1
    s = 0
  end
  redis.call('HSET', META, t .. ':l', l, t .. ':s', s)
end
local function lh_get(base, t, f)
  local l, s = lh_params(t)
  return redis.call('HGET', lh_bucket(base, lh_hash(f), l, s), f)
end
-- Sets a field; returns the value it had (false when new).
local function lh_set(base, t, f, v)
  local l, s = lh_params(t)
  local key = lh_bucket(base, lh_hash(f), l, s)
  local old = redis.call('HGET', key, f)
  redis.call('HSET', key, f, v)
  if not old then
    local n = redis.call('HINCRBY', META, t .. ':n', 1)
    if n > LOAD * (2 ^ l + s) then lh_split(base, t, l, s) end
  end
  return old
end
local function lh_del(base, t, f)
  local l, s = lh_params(t)
  local gone = redis.call('HDEL', lh_bucket(base, lh_hash(f), l, s), f)
  if gone == 1 then redis.call('HINCRBY', META, t .. ':n', -1) end
  return gone
end
`;

const b36 = (n: number) => n.toString(36);

/** An mtime as stored: an exact ISO time as `~` + its ms in base 36, any other text as it is. */
function packMtime(mtime: string): string {
  if (mtime.startsWith('~')) return `~${mtime}`;
  const ms = Date.parse(mtime);
  if (Number.isFinite(ms) && ms >= 0 && new Date(ms).toISOString() === mtime) return `~${b36(ms)}`;
  return mtime;
}

function unpackMtime(s: string): string {
  if (s.startsWith('~~')) return s.slice(1);
  if (s.startsWith('~')) return new Date(Number.parseInt(s.slice(1), 36)).toISOString();
  return s;
}

/** The part of a packed sync record naming the version (size, mtime): equal for the same version. */
export function versionPart(size: number, mtime: string): string {
  return `${b36(size)}${SEP}${packMtime(mtime)}${SEP}`;
}

/**
 * A sync record as stored: size, mtime, syncedAt, then the key — as the part before the path when
 * the key ends with the path (`+acme/` for `acme/<path>`), else whole (`=<key>`); just `^` for the
 * usual `<org>/<path>`. The ETag is not kept (nothing reads it back; S3's HEAD has it).
 */
export function packSynced(path: string, r: SyncRecord, org: string): string {
  const key =
    r.key === `${org}/${path}`
      ? '^'
      : r.key.length > path.length && r.key.endsWith(path)
        ? `+${r.key.slice(0, -path.length)}`
        : `=${r.key}`;
  return `${versionPart(r.size, r.mtime)}${b36(r.syncedAt)}${SEP}${key}`;
}

export function unpackSynced(
  path: string,
  v: string | null | undefined | false,
  org: string,
): SyncRecord | undefined {
  if (typeof v !== 'string' || !v) return undefined;
  const parts = v.split(SEP);
  if (parts.length < 4) return undefined;
  const [size, mtime, syncedAt] = parts as [string, string, string];
  const rest = parts.slice(3).join(SEP);
  const key = rest === '^' ? `${org}/${path}` : rest.startsWith('+') ? rest.slice(1) + path : rest.slice(1);
  return {
    size: Number.parseInt(size, 36),
    mtime: unpackMtime(mtime),
    key,
    syncedAt: Number.parseInt(syncedAt, 36),
  };
}

/** A date of call `YYYY-MM-DD` as days since 1970 in base 36 (`~` first), anything else as it is. */
function packDate(d: string): string {
  if (d.startsWith('~')) return `~${d}`;
  if (/^\d{4}-\d{2}-\d{2}$/.test(d)) {
    const ms = Date.parse(`${d}T00:00:00Z`);
    if (Number.isFinite(ms) && ms >= 0 && new Date(ms).toISOString().slice(0, 10) === d)
      return `~${b36(ms / 86_400_000)}`;
  }
  return d;
}

function unpackDate(s: string): string {
  if (s.startsWith('~~')) return s.slice(1);
  if (s.startsWith('~'))
    return new Date(Number.parseInt(s.slice(1), 36) * 86_400_000).toISOString().slice(0, 10);
  return s;
}

/**
 * A manifest row as stored, without its manifest (Lua puts the manifest's number first): line,
 * date, e-mail, and the file column when it is not the reference the row is stored under.
 */
export function packRow(ref: string, r: IndexedRow): string {
  return [b36(r.line), packDate(r.dateOfCall), r.email, r.file === ref ? '' : `=${r.file}`].join(SEP);
}

/** `v` is `<manifest number>␟<packed row>`; `manifest` the path that number stands for. */
export function unpackRow(ref: string, v: string | null | undefined | false, manifest: string) {
  if (typeof v !== 'string' || !v) return undefined;
  const parts = v.split(SEP);
  if (parts.length < 5) return undefined;
  const [, line, date, email] = parts as [string, string, string, string];
  const file = parts.slice(4).join(SEP);
  const row: IndexedRow = {
    email,
    dateOfCall: unpackDate(date),
    line: Number.parseInt(line, 36),
    file: file.startsWith('=') ? file.slice(1) : ref,
    manifest,
  };
  return row;
}
