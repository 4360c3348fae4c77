/**
 * Invariant 5: a tenant's FTP logins never exceed its `maxConnections`, polls and transfers
 * together, across all replicas. A Redis sorted set of leases (member = lease id, score = expiry on
 * Redis's clock); a lease not renewed in time expires, so a crashed replica frees its slots, and a
 * lease that expired is never brought back by a late renewal (its session is closed instead).
 *
 * A 421 ("too many connections") lowers the tenant's effective budget for a while and, as lftp
 * does, holds its logins back for a pause that grows with each 421 in a row (2 s, 4 s, … 5 min),
 * for every replica; a successful login ends the series. A refused acquire marks the tenant as
 * wanted for a moment, so that replicas holding idle sessions of it give their slots back early.
 */
import { randomUUID } from 'node:crypto';
import type { ConnectionBudget } from '../ports/budget.js';
import { luaScript, type RedisClient } from './redis-client.js';
import { stateKey } from './redis-keys.js';

/** Redis's clock in ms, then expired leases dropped and the effective limit (or -pause) computed. */
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local pause = redis.call('PTTL', KEYS[4])
local limit = tonumber(ARGV[1])
local lowered = redis.call('GET', KEYS[2])
if lowered then limit = math.min(limit, tonumber(lowered)) end
local free = limit - redis.call('ZCARD', KEYS[1])
`;

/**
 * KEYS: leases, lowered limit, wanted flag, pause. ARGV: limit, lease ms, lease id, wanted ms (0: a
 * refusal does not mark the tenant wanted). Returns 1 (taken), 0 (no slot), or -ms (logins paused
 * after 421s for that long).
 */
const ACQUIRE = luaScript(`${PRELUDE}
if pause > 0 then return -pause end
if free > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[3], 1, 'PX', ARGV[4]) end
return 0`);

/** As ACQUIRE, without taking: the free slots (≥ 0), or -ms of pause. ARGV: limit, wanted ms. */
const ROOM = luaScript(`${PRELUDE}
if pause > 0 then return -pause end
if free <= 0 then redis.call('SET', KEYS[3], 1, 'PX', ARGV[2]) return 0 end
return free`);

/** KEYS: leases. The leases held now, on Redis's clock. */
const IN_USE = luaScript(`
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return redis.call('ZCARD', KEYS[1])`);

/** KEYS: the tenant's leases key once per lease. ARGV: lease ids…, lease ms. Returns the ids lost. */
const RENEW = luaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lost = {}
for i = 1, #ARGV - 1 do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', now + tonumber(ARGV[#ARGV]), ARGV[i]) == 0 and
     not redis.call('ZSCORE', KEYS[i], ARGV[i]) then
    table.insert(lost, ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[#ARGV]) * 2)
return lost`);

/** KEYS: pause, 421 count. ARGV: base ms, max ms. Returns the pause set. */
const REFUSED = luaScript(`
local n = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) * 4)
local pause = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) * 2 ^ (n - 1))
redis.call('SET', KEYS[1], 1, 'PX', math.floor(pause))
return math.floor(pause)`);

/** How long a refused acquire marks its tenant as wanted. */
const WANTED_MS = 2_000;
/** After the first 421 in a row, logins of the tenant pause this long; it doubles up to PAUSE_MAX_MS. */
export const PAUSE_BASE_MS = 2_000;
export const PAUSE_MAX_MS = 5 * 60_000;

export function makeRedisBudget(
  redis: RedisClient,
  prefix: string,
  opts: { leaseMs?: number } = {},
): ConnectionBudget {
  const leaseMs = opts.leaseMs ?? 30_000;
  const held = new Map<string, string>(); // lease → org
  const lostLeases = new Set<string>();
  const k = (org: string) => ({
    slots: stateKey(prefix, org, 'conn'),
    lowered: stateKey(prefix, org, 'conn-limit'),
    wanted: stateKey(prefix, org, 'conn-wanted'),
    pause: stateKey(prefix, org, 'conn-pause'),
    refusals: stateKey(prefix, org, 'conn-421s'),
  });

  const renew = async () => {
    if (!held.size) return;
    // One call per tenant keeps each call inside one cluster slot.
    const byOrg = new Map<string, string[]>();
    for (const [lease, org] of held) byOrg.set(org, [...(byOrg.get(org) ?? []), lease]);
    for (const [org, ls] of byOrg) {
      const slots = k(org).slots;
      const lost = (await RENEW(
        redis,
        ls.map(() => slots),
        [...ls, leaseMs],
      ).catch(() => [])) as string[];
      for (const lease of lost) {
        held.delete(lease);
        lostLeases.add(lease);
      }
    }
  };
  const timer = setInterval(() => void renew(), Math.max(200, Math.floor(leaseMs / 3)));
  timer.unref();

  return {
    async tryAcquire(org, limit, opts) {
      const lease = randomUUID();
      const key = k(org);
      const res = Number(
        await ACQUIRE(
          redis,
          [key.slots, key.lowered, key.wanted, key.pause],
          [limit, leaseMs, lease, opts?.markWanted === false ? 0 : WANTED_MS],
        ),
      );
      if (res < 0) return { pausedMs: -res };
      if (res !== 1) return {};
      held.set(lease, org);
      return lease;
    },
    async room(org, limit) {
      const key = k(org);
      return Number(await ROOM(redis, [key.slots, key.lowered, key.wanted, key.pause], [limit, WANTED_MS]));
    },
    async release(org, lease) {
      held.delete(lease);
      lostLeases.delete(lease);
      await redis.zrem(k(org).slots, lease);
    },
    lost: (lease) => lostLeases.has(lease),
    async inUse(org) {
      return Number(await IN_USE(redis, [k(org).slots]));
    },
    async wanted(orgs) {
      // One command per tenant (a cluster pipeline may not span slots); they share one round trip.
      const res = await Promise.all(orgs.map((org) => redis.exists(k(org).wanted)));
      return new Set(orgs.filter((_, i) => res[i] === 1));
    },
    async lower(org, to, forMs) {
      const key = k(org);
      await redis.set(key.lowered, Math.max(1, to), 'PX', forMs);
      const pausedMs = Number(await REFUSED(redis, [key.pause, key.refusals], [PAUSE_BASE_MS, PAUSE_MAX_MS]));
      return { pausedMs };
    },
    async loggedIn(org) {
      await redis.del(k(org).refusals);
    },
    close() {
      clearInterval(timer);
    },
  };
}
