/**
 * Invariant 5: a tenant's FTP logins never exceed its `maxConnections`, polls and transfers
 * together, across all replicas. A Redis sorted set of leases (member = lease id, score = expiry on
 * Redis's clock); a lease not renewed in time expires, so a crashed replica frees its slots.
 * A 421 lowers the tenant's effective budget for a while. A refused acquire marks the tenant as
 * wanted for a moment, so that replicas holding idle sessions of it give their slots back early.
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient } from './redis-client.js';
import { stateKey } from './redis-state.js';

const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[1])
local lowered = redis.call('GET', KEYS[2])
if lowered then limit = math.min(limit, tonumber(lowered)) end
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
redis.call('SET', KEYS[3], 1, 'PX', ARGV[4])
return 0`;

const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV - 1 do redis.call('ZADD', KEYS[i], now + tonumber(ARGV[#ARGV]), ARGV[i]) end
for i = 1, #ARGV - 1 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[#ARGV]) * 2) end
return 1`;

/** How long a refused acquire marks its tenant as wanted. */
const WANTED_MS = 2_000;

export interface ConnectionBudget {
  /** A lease id, or null when every slot of the tenant is taken. */
  tryAcquire(org: string, limit: number): Promise<string | null>;
  release(org: string, lease: string): Promise<void>;
  /** Leases currently held for a tenant (all replicas). */
  inUse(org: string): Promise<number>;
  /** The tenants among `orgs` for which some replica was refused a slot in the last moment. */
  wanted(orgs: string[]): Promise<Set<string>>;
  /** After a 421: allow at most `to` logins for `forMs`. */
  lower(org: string, to: number, forMs: number): Promise<void>;
  /** Stops renewing; leases still held expire by themselves. */
  close(): void;
}

export function makeRedisBudget(
  redis: RedisClient,
  prefix: string,
  opts: { leaseMs?: number } = {},
): ConnectionBudget {
  const leaseMs = opts.leaseMs ?? 30_000;
  const held = new Map<string, string>(); // lease → org
  const slots = (org: string) => stateKey(prefix, org, 'conn');
  const lowered = (org: string) => stateKey(prefix, org, 'conn-limit');
  const wantedKey = (org: string) => stateKey(prefix, org, 'conn-wanted');

  const renew = async () => {
    if (!held.size) return;
    const leases = [...held];
    // One call per tenant keeps each call inside one cluster slot.
    const byOrg = new Map<string, string[]>();
    for (const [lease, org] of leases) byOrg.set(org, [...(byOrg.get(org) ?? []), lease]);
    for (const [org, ls] of byOrg) {
      await redis.eval(RENEW, ls.length, ...ls.map(() => slots(org)), ...ls, leaseMs).catch(() => {});
    }
  };
  const timer = setInterval(() => void renew(), Math.max(200, Math.floor(leaseMs / 3)));
  timer.unref();

  return {
    async tryAcquire(org, limit) {
      const lease = randomUUID();
      const ok = await redis.eval(
        ACQUIRE,
        3,
        slots(org),
        lowered(org),
        wantedKey(org),
        limit,
        leaseMs,
        lease,
        WANTED_MS,
      );
      if (ok !== 1) return null;
      held.set(lease, org);
      return lease;
    },
    async release(org, lease) {
      held.delete(lease);
      await redis.zrem(slots(org), lease);
    },
    async inUse(org) {
      await redis.zremrangebyscore(slots(org), '-inf', Date.now());
      return redis.zcard(slots(org));
    },
    async wanted(orgs) {
      // One command per tenant (a cluster pipeline may not span slots); they share one round trip.
      const res = await Promise.all(orgs.map((org) => redis.exists(wantedKey(org))));
      return new Set(orgs.filter((_, i) => res[i] === 1));
    },
    async lower(org, to, forMs) {
      await redis.set(lowered(org), Math.max(1, to), 'PX', forMs);
    },
    close() {
      clearInterval(timer);
    },
  };
}

/**
 * A renewed lock: runs `fn` only if no other holder has the lock (invariant 6: one poll per tenant at
 * a time across replicas). Returns `{ ran: false }` when the lock is taken.
 */
export async function withLock<T>(
  redis: RedisClient,
  key: string,
  ttlMs: number,
  fn: () => Promise<T>,
): Promise<{ ran: true; value: T } | { ran: false }> {
  const token = randomUUID();
  const ok = await redis.set(key, token, 'PX', ttlMs, 'NX');
  if (ok !== 'OK') return { ran: false };
  const timer = setInterval(
    () => {
      void redis
        .eval(
          "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
          1,
          key,
          token,
          ttlMs,
        )
        .catch(() => {});
    },
    Math.floor(ttlMs / 3),
  );
  timer.unref();
  try {
    return { ran: true, value: await fn() };
  } finally {
    clearInterval(timer);
    await redis
      .eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        1,
        key,
        token,
      )
      .catch(() => {});
  }
}
