/**
 * The connection budget port (invariant 5): leases of a tenant's FTP/SFTP logins, counted across every
 * replica, that expire unless renewed, with the 421 back-off. The session pool (`sync/pool.ts`) takes
 * and returns leases through it; `adapters/redis-budget.ts` implements it in Redis.
 */

/** `tryAcquire`'s answer when no login may start now. */
export interface NoSlot {
  /** Logins of the tenant are paused after 421s: how much longer. */
  pausedMs?: number;
}

export interface ConnectionBudget {
  /**
   * A lease id, or why not (every slot taken, or logins paused after 421s). A refusal marks the tenant
   * wanted (see `wanted`) unless `markWanted` is false: a caller whose own session of the tenant is
   * about to come back does not ask other replicas to give theirs up.
   */
  tryAcquire(org: string, limit: number, opts?: { markWanted?: boolean }): Promise<string | NoSlot>;
  /** Whether an acquire could succeed now, taking nothing: free slots, or a pause in ms (< 0). */
  room(org: string, limit: number): Promise<number>;
  release(org: string, lease: string): Promise<void>;
  /** A lease that expired before it could be renewed (Redis out of reach): its session must go. */
  lost(lease: string): boolean;
  /** Leases currently held for a tenant (all replicas). */
  inUse(org: string): Promise<number>;
  /** The tenants among `orgs` for which some replica was refused a slot in the last moment. */
  wanted(orgs: string[]): Promise<Set<string>>;
  /** After a 421: allow at most `to` logins for `forMs`, and pause logins (growing with each 421). */
  lower(org: string, to: number, forMs: number): Promise<{ pausedMs: number }>;
  /** A login succeeded: the series of 421s is over. */
  loggedIn(org: string): Promise<void>;
  /** Stops renewing; leases still held expire by themselves. */
  close(): void;
}
