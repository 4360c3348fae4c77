/**
 * The poll's decision, pure: listing + sync state + previously seen versions → versions to sync.
 *
 * A version is synced when it is **stable**: the same size and mtime on two consecutive polls, and
 * older than `minFileAge` — measured on the server's clock when its mtime is exact (MLSD), otherwise
 * since we first saw the version (a LIST time is never trusted to the second or its timezone).
 */
import type { SeenRecord } from '../ports/sync-state.js';
import type { RemoteFile, SyncRecord } from '../types.js';
import { listMonthDay } from './listing-time.js';

export interface PlanInput {
  files: RemoteFile[];
  synced: (SyncRecord | undefined)[];
  seen: (SeenRecord | undefined)[];
  now: number;
  minFileAge: number;
}

export interface Plan {
  /** Stable versions not in sync state: add a sync job for each. */
  enqueue: RemoteFile[];
  /** Versions to remember until the next poll (unstable ones and those just enqueued). */
  seen: Map<string, SeenRecord>;
  unchanged: number;
  waiting: number;
}

/**
 * Whether a stored version and a listed file are the same version. Unix LIST shows `Mon DD HH:MM`
 * for recent files and `Mon DD  YYYY` for files older than six months: the same file changes its
 * raw time string once, which must not make it a new version.
 */
export function sameVersion(a: { size: number; mtime: string }, b: { size: number; mtime: string }): boolean {
  if (a.size !== b.size) return false;
  if (a.mtime === b.mtime) return true;
  const ma = listMonthDay(a.mtime);
  const mb = listMonthDay(b.mtime);
  const aHasTime = a.mtime.includes(':');
  const bHasTime = b.mtime.includes(':');
  return ma !== undefined && ma === mb && aHasTime !== bHasTime;
}

export function planPoll({ files, synced, seen, now, minFileAge }: PlanInput): Plan {
  const plan: Plan = { enqueue: [], seen: new Map(), unchanged: 0, waiting: 0 };
  files.forEach((file, i) => {
    const done = synced[i];
    if (done && sameVersion(done, file)) {
      plan.unchanged++;
      return;
    }
    const before = seen[i];
    if (before && before.size === file.size && before.mtime === file.mtime) {
      const mtimeMs = file.mtimeExact ? Date.parse(file.mtime) : Number.NaN;
      const age = Number.isFinite(mtimeMs) ? now - mtimeMs : now - before.firstSeen;
      plan.seen.set(file.path, before);
      if (age >= minFileAge) plan.enqueue.push(file);
      else plan.waiting++;
      return;
    }
    plan.seen.set(file.path, { size: file.size, mtime: file.mtime, firstSeen: now });
    plan.waiting++;
  });
  return plan;
}
