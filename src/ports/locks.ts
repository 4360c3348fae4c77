/**
 * Invariant 6: one poll per tenant at a time, across every replica, even when a listing takes longer
 * than the poll interval. The lock is renewed while `fn` runs and expires by itself when its holder
 * dies.
 */
export interface PollLocks {
  /** Runs `fn` only if no other poll of the tenant holds the lock; `{ ran: false }` otherwise. */
  withPollLock<T>(org: string, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }>;
}
