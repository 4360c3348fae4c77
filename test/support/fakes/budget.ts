/**
 * An in-memory `ConnectionBudget` with the Redis adapter's rules (adapters/redis-budget.ts): leases
 * per tenant up to the limit, lowered for a while after a 421, logins paused for a time that doubles
 * with each 421 in a row (2 s, 4 s, … 5 min) until one succeeds, and a refused acquire or room check
 * marking the tenant wanted for a moment. Leases do not expire by themselves (no renewal to miss):
 * `expire(lease)` makes one lost, as a renewal that came too late would.
 */
import { randomUUID } from 'node:crypto';
import { PAUSE_BASE_MS, PAUSE_MAX_MS } from '../../../src/adapters/redis-budget.js';
import type { ConnectionBudget } from '../../../src/ports/budget.js';

const WANTED_MS = 2_000;

export interface MemoryBudget extends ConnectionBudget {
  /** Leases held, by tenant (what the test asserts invariant 5 on). */
  held(org: string): string[];
  /** The most leases a tenant held at once. */
  peak(org: string): number;
  /** The lease is lost (Redis out of reach past its expiry): `lost` says so and its slot is free. */
  expire(lease: string): void;
  /** Logins of the tenant pause for `ms`, as after a 421. */
  pause(org: string, ms: number): void;
}

export function makeMemoryBudget(opts: { now?: () => number } = {}): MemoryBudget {
  const now = opts.now ?? Date.now;
  const leases = new Map<string, Set<string>>();
  const peaks = new Map<string, number>();
  const lostLeases = new Set<string>();
  const lowered = new Map<string, { to: number; until: number }>();
  const paused = new Map<string, number>();
  const refusals = new Map<string, number>();
  const wantedUntil = new Map<string, number>();

  const of = (org: string) => {
    let s = leases.get(org);
    if (!s) {
      s = new Set();
      leases.set(org, s);
    }
    return s;
  };
  const pauseLeft = (org: string) => Math.max(0, (paused.get(org) ?? 0) - now());
  const free = (org: string, limit: number) => {
    const low = lowered.get(org);
    const effective = low && low.until > now() ? Math.min(limit, low.to) : limit;
    return effective - of(org).size;
  };

  return {
    async tryAcquire(org, limit, opts) {
      const left = pauseLeft(org);
      if (left > 0) return { pausedMs: left };
      if (free(org, limit) <= 0) {
        if (opts?.markWanted !== false) wantedUntil.set(org, now() + WANTED_MS);
        return {};
      }
      const id = randomUUID();
      of(org).add(id);
      peaks.set(org, Math.max(peaks.get(org) ?? 0, of(org).size));
      return id;
    },
    async room(org, limit) {
      const left = pauseLeft(org);
      if (left > 0) return -left;
      const n = free(org, limit);
      if (n <= 0) {
        wantedUntil.set(org, now() + WANTED_MS);
        return 0;
      }
      return n;
    },
    async release(org, lease) {
      of(org).delete(lease);
      lostLeases.delete(lease);
    },
    lost: (lease) => lostLeases.has(lease),
    async inUse(org) {
      return of(org).size;
    },
    async wanted(orgs) {
      return new Set(orgs.filter((org) => (wantedUntil.get(org) ?? 0) > now()));
    },
    async lower(org, to, forMs) {
      lowered.set(org, { to: Math.max(1, to), until: now() + forMs });
      const n = (refusals.get(org) ?? 0) + 1;
      refusals.set(org, n);
      const pausedMs = Math.floor(Math.min(PAUSE_MAX_MS, PAUSE_BASE_MS * 2 ** (n - 1)));
      paused.set(org, now() + pausedMs);
      return { pausedMs };
    },
    async loggedIn(org) {
      refusals.delete(org);
    },
    close() {},
    held: (org) => [...of(org)],
    peak: (org) => peaks.get(org) ?? 0,
    expire(lease) {
      for (const s of leases.values()) if (s.delete(lease)) lostLeases.add(lease);
    },
    pause(org, ms) {
      paused.set(org, now() + ms);
    },
  };
}
