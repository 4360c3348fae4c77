/**
 * The Lua scripts of the sync state (adapters/redis-state.ts) over a tenant's bucketed tables
 * (adapters/redis-compact.ts's `LH_LUA`), each run by EVALSHA through `luaScript`.
 */
import type { ChainableCommander } from 'ioredis';
import { type LuaScript, luaScript, type RedisClient } from './redis-client.js';
import { LH_LUA } from './redis-compact.js';

/** The bucketed tables' keys: the meta hash and each table's bucket-key prefix. */
export const SV = 'sv';
export const MR = 'mr';

/** Every synced record of many paths. KEYS: lh, sv base. ARGV: paths. */
const LOOKUP = `${LH_LUA}
local l, s = lh_params('sv')
local out = {}
for i = 1, #ARGV do out[i] = redis.call('HGET', lh_bucket(KEYS[2], lh_hash(ARGV[i]), l, s), ARGV[i]) end
return out`;

/** KEYS: lh, mr base, manifests. ARGV: refs. Returns the index of the first ref with a row, the row, its manifest. */
const FIND_ROW_LUA = `
local function find_row(first)
  for i = first, #ARGV do
    local v = lh_get(KEYS[2], 'mr', ARGV[i])
    if v then
      local id = string.match(v, '^([^\\031]*)')
      return { i - first + 1, v, redis.call('HGET', KEYS[3], 'i:' .. id) or '' }
    end
  end
  return {}
end
`;
const FIND_ROW = `${LH_LUA}${FIND_ROW_LUA}
return find_row(1)`;

/**
 * A sync job's first look. KEYS: lh, mr base, manifests, sv base, info, manifests-pending. ARGV:
 * path, the job's own pending-manifest member ('' when none), the oldest first-listed time of a
 * pending call record that still holds recordings (≥ 1: settled marks score 0), manifest refs…
 * Returns the packed sync record, health, reason, the number of other call records pending since
 * then, 1 when the job's own version is a pending (unsettled) call record, then (when refs were
 * given) the index of the first ref with a row, the row and its manifest.
 */
const JOB_CHECK = `${LH_LUA}${FIND_ROW_LUA}
local out = { lh_get(KEYS[4], 'sv', ARGV[1]) }
local h = redis.call('HMGET', KEYS[5], 'health', 'reason')
out[2] = h[1]
out[3] = h[2]
local own = ARGV[2] ~= '' and tonumber(redis.call('ZSCORE', KEYS[6], ARGV[2]) or '0') or 0
local pending = redis.call('ZCOUNT', KEYS[6], ARGV[3], '+inf')
if own >= tonumber(ARGV[3]) then pending = pending - 1 end
out[4] = pending
out[5] = own > 0 and 1 or 0
if #ARGV >= 4 then
  local r = find_row(4)
  out[6] = r[1] or 0
  out[7] = r[2] or ''
  out[8] = r[3] or ''
end
return out`;

/**
 * KEYS: lh, mr base, manifests, sv base, seen, parked, info (one tenant's, one slot). ARGV: path,
 * packed record, its version part, size, metadata source ('' for none), then manifest refs… The same
 * version marked twice (a job run again after its worker lost its lock, or a HEAD that found it
 * already there) is counted once. Returns 1 when counted (else 0), then — when refs were given — the
 * manifest row of the first ref that has one, read after the write (index, row, manifest; 0 for
 * none): a recording uploaded without a row takes one indexed meanwhile, in the same round trip.
 */
const MARK_SYNCED = `${LH_LUA}${FIND_ROW_LUA}
local old = lh_set(KEYS[4], 'sv', ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
local counted = 0
if not (old and string.sub(old, 1, #ARGV[3]) == ARGV[3]) then
  counted = 1
  redis.call('HINCRBY', KEYS[7], 'files', 1)
  redis.call('HINCRBY', KEYS[7], 'bytes', ARGV[4])
  if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[7], 'meta:' .. ARGV[5], 1) end
end
if #ARGV < 6 then return { counted } end
local r = find_row(6)
return { counted, r[1] or 0, r[2] or '', r[3] or '' }`;

/** KEYS: lh, sv base. ARGV: paths. */
const FORGET = `${LH_LUA}
for i = 1, #ARGV do lh_del(KEYS[2], 'sv', ARGV[i]) end
return 0`;

/**
 * KEYS: lh, sv base, the old layout's synced hash. ARGV: path, packed record, … Moves records of the
 * old layout in; a record already in the new layout (written since) wins.
 */
const MIGRATE_SYNCED = `${LH_LUA}
local moved = 0
for i = 1, #ARGV, 2 do
  if not lh_get(KEYS[2], 'sv', ARGV[i]) then
    lh_set(KEYS[2], 'sv', ARGV[i], ARGV[i + 1])
    moved = moved + 1
  end
  redis.call('HDEL', KEYS[3], ARGV[i])
end
return moved`;

/**
 * KEYS: lh, mr base, manifests, the old layout's manifest hash. ARGV: manifest path, '1' to migrate
 * (set only where no row is, and forget the old one), then ref, packed row, … A manifest path is
 * stored once, as a number (`manifests`: p:<path> → n, i:<n> → path).
 */
const INDEX_ROWS = `${LH_LUA}
local id = redis.call('HGET', KEYS[3], 'p:' .. ARGV[1])
if not id then
  id = redis.call('HINCRBY', KEYS[3], 'next', 1)
  redis.call('HSET', KEYS[3], 'p:' .. ARGV[1], id, 'i:' .. id, ARGV[1])
end
for i = 3, #ARGV, 2 do
  if ARGV[2] ~= '1' or not lh_get(KEYS[2], 'mr', ARGV[i]) then
    lh_set(KEYS[2], 'mr', ARGV[i], id .. '\\031' .. ARGV[i + 1])
  end
  if ARGV[2] == '1' then redis.call('HDEL', KEYS[4], ARGV[i]) end
end
return 0`;

const SCRIPTS = { LOOKUP, FIND_ROW, JOB_CHECK, MARK_SYNCED, FORGET, MIGRATE_SYNCED, INDEX_ROWS } as const;
const KEY_COUNTS: Record<keyof typeof SCRIPTS, number> = {
  LOOKUP: 2,
  FIND_ROW: 3,
  JOB_CHECK: 6,
  MARK_SYNCED: 7,
  FORGET: 2,
  MIGRATE_SYNCED: 3,
  INDEX_ROWS: 4,
};

/** The scripts run by EVALSHA (`luaScript`): a few KB of Lua with every call would cost more than the call. */
const LUA = Object.fromEntries(
  Object.entries(SCRIPTS).map(([name, lua]) => [name, luaScript(lua)]),
) as Record<keyof typeof SCRIPTS, LuaScript>;

type Commander = RedisClient | ChainableCommander;
export function run(
  target: Commander,
  name: keyof typeof SCRIPTS,
  ...args: (string | number)[]
): Promise<unknown> {
  const n = KEY_COUNTS[name];
  return LUA[name](target, args.slice(0, n).map(String), args.slice(n));
}
