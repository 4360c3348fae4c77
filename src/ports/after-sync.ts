/**
 * The after-sync store port: pending deletes and moves of source files, recorded before they are
 * first tried and removed once done (a crash cannot lose one). `adapters/redis-after-sync.ts`
 * implements it in Redis.
 */

/** One source file waiting for its after-sync action. */
export interface PendingAction {
  path: string;
  size: number;
  mtime: string;
  action: 'delete' | 'move';
  /** `move`: the target, expanded when the version was synced (a retry goes to the same place). */
  target?: string;
  /** The object the version is in. */
  key: string;
  /** Failed attempts so far. */
  attempts: number;
  lastError?: string;
  lastErrorAt?: number;
  /** When it was recorded (ms). */
  since: number;
  /** Not tried again before this (ms): the backoff after a failure. */
  next: number;
  /** An actor (a job or a poller pass) works on it until then (ms). */
  claimedUntil?: number;
}

export type Version = { size: number; mtime: string };

export interface AfterSyncStore {
  /** Records the pending action of a version; the same version recorded again is left as it is. */
  record(org: string, rec: Omit<PendingAction, 'attempts' | 'since' | 'next'>, now: number): Promise<void>;
  get(org: string, path: string): Promise<PendingAction | undefined>;
  /** Every pending action of a tenant (status). */
  all(org: string): Promise<PendingAction[]>;
  /** Pending actions whose backoff is over and that nobody works on, at most `limit`. */
  due(org: string, now: number, limit: number): Promise<PendingAction[]>;
  /**
   * Takes the entry of this version for `ms`, so one actor at a time acts on a file (a job re-run
   * and a poller pass of another replica). Undefined when it is gone, another version, or taken.
   */
  claim(org: string, path: string, v: Version, now: number, ms: number): Promise<PendingAction | undefined>;
  /** Removes the entry when it is still this version (the action is done, or moot). */
  finish(org: string, path: string, v: Version): Promise<void>;
  /** A failed attempt: counted, with its error and the time of the next attempt; the claim ends. */
  fail(org: string, path: string, v: Version, error: string, now: number, next: number): Promise<void>;
  /** Ends a claim without counting an attempt (nothing was tried), not before `next`. */
  unclaim(org: string, path: string, v: Version, next: number): Promise<void>;
}
