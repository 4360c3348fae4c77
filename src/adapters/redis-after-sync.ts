/**
 * Pending after-sync actions in Redis: one hash per tenant, with the tenant's `{org}` hash tag like
 * every other state key (./redis-state.ts), so a Redis Cluster keeps it in the tenant's slot.
 *
 *   <prefix>:{<org>}:cleanup   hash  path → PendingAction JSON
 *
 * An entry is written before the action is first tried and removed only when it succeeded (or is
 * moot: the file changed or is gone). It is what makes the action survive a crash and be retried.
 * Every change is a script that first checks the entry is still the same version (size, mtime): a
 * newer version recorded meanwhile is never cleared or marked by an actor working on the old one.
 */
import type { AfterSyncStore, PendingAction, Version } from '../ports/after-sync.js';
import { type LuaScript, luaScript, type RedisClient } from './redis-client.js';
import { stateKey } from './redis-keys.js';

/** Shared head of the scripts: KEYS[1] the hash; ARGV path, size, mtime. `rec` is nil unless same version. */
const SAME = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local ok, rec = pcall(cjson.decode, v)
if not ok or tostring(rec.size) ~= ARGV[2] or rec.mtime ~= ARGV[3] then return false end
`;

/** ARGV 4: now, 5: claim ms. */
const CLAIM = luaScript(`${SAME}
if rec.claimedUntil and tonumber(rec.claimedUntil) > tonumber(ARGV[4]) then return false end
rec.claimedUntil = tonumber(ARGV[4]) + tonumber(ARGV[5])
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out`);

const FINISH = luaScript(`${SAME}
redis.call('HDEL', KEYS[1], ARGV[1])
return 1`);

/** ARGV 4: error, 5: now, 6: next. */
const FAIL = luaScript(`${SAME}
rec.attempts = (tonumber(rec.attempts) or 0) + 1
rec.lastError = ARGV[4]
rec.lastErrorAt = tonumber(ARGV[5])
rec.next = tonumber(ARGV[6])
rec.claimedUntil = nil
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1`);

/** ARGV 4: next. */
const UNCLAIM = luaScript(`${SAME}
rec.next = tonumber(ARGV[4])
rec.claimedUntil = nil
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1`);

/** ARGV 4: the new entry's JSON. The same version already there is kept (its attempts and backoff). */
const RECORD = luaScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  local ok, rec = pcall(cjson.decode, v)
  if ok and tostring(rec.size) == ARGV[2] and rec.mtime == ARGV[3] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
return 1`);

function parse(v: string | null | undefined): PendingAction | undefined {
  if (!v) return undefined;
  try {
    return JSON.parse(v) as PendingAction;
  } catch {
    return undefined;
  }
}

export function makeRedisAfterSyncStore(redis: RedisClient, prefix: string): AfterSyncStore {
  const k = (org: string) => stateKey(prefix, org, 'cleanup');
  const run = (script: LuaScript, org: string, path: string, v: Version, ...rest: (string | number)[]) =>
    script(redis, [k(org)], [path, String(v.size), v.mtime, ...rest]);
  const all = async (org: string) =>
    Object.values(await redis.hgetall(k(org)))
      .map(parse)
      .filter((r): r is PendingAction => r !== undefined);

  return {
    async record(org, rec, now) {
      const entry: PendingAction = { ...rec, attempts: 0, since: now, next: now };
      await run(RECORD, org, rec.path, rec, JSON.stringify(entry));
    },
    async get(org, path) {
      return parse(await redis.hget(k(org), path));
    },
    all,
    async due(org, now, limit) {
      return (await all(org))
        .filter((r) => r.next <= now && !(r.claimedUntil && r.claimedUntil > now))
        .sort((a, b) => a.next - b.next)
        .slice(0, limit);
    },
    async claim(org, path, v, now, ms) {
      const out = await run(CLAIM, org, path, v, now, ms);
      return typeof out === 'string' ? parse(out) : undefined;
    },
    async finish(org, path, v) {
      await run(FINISH, org, path, v);
    },
    async fail(org, path, v, error, now, next) {
      await run(FAIL, org, path, v, error, now, next);
    },
    async unclaim(org, path, v, next) {
      await run(UNCLAIM, org, path, v, next);
    },
  };
}
