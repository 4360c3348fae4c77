/**
 * The after-sync action of a tenant (`afterSync: delete | move`): what happens to a source file once
 * its version is safely in S3.
 *
 * Safety rule — clean only what is safe. A source file is touched only when
 *   1. that exact version (size, mtime) is marked synced in sync state, which happens only after S3
 *      confirmed the object (invariant 3): checked again right before acting;
 *   2. a call record (CSV/TSV/JSON) was indexed too (the manifest indexer ran without error);
 *   3. a fresh listing of its directory still shows that version. A file rewritten since is a new
 *      version: it is left alone and the next poll syncs it.
 *
 * Durability. The action is recorded in Redis (adapters/redis-after-sync.ts) before it is first
 * tried and removed only once it is done or moot, so a crash, a refused DELE or a lost connection
 * never loses it: a job re-run (which finds the version already synced and uploads nothing) or the
 * poller's pass after each poll tries again, with exponential backoff per entry. A claim in the
 * entry keeps two actors (a job re-run and a poller of another replica) from acting at once.
 * Idempotent after a crash in the middle: a file already gone counts as done (for `move`, found at
 * its target).
 */

import type { TenantConfig } from '../config.js';
import { causeOf, NotFoundError, toError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AfterSyncStore, PendingAction } from '../ports/after-sync.js';
import type { SourceSession } from '../ports/source.js';
import type { SyncRecord, Version } from '../types.js';
import { isCallRecord } from './metadata/resolve.js';
import { expandMoveTo, parentDir, wouldResync } from './move-target.js';
import { sameVersion } from './plan.js';
import type { SessionPool } from './pool.js';

/**
 * How one attempt ended: `done` (deleted or moved, or found moved already), `gone` (not on the server
 * any more), `changed` (a new version is there: kept), `failed` (retried later), `busy` (another actor
 * holds it, or its version is not marked synced yet: nothing tried).
 */
export type AfterSyncOutcome = 'done' | 'gone' | 'changed' | 'failed' | 'busy';

export interface AfterSyncDeps {
  store: AfterSyncStore;
  /** The sync record of a path (the version must be marked synced before anything is touched). */
  getSynced(org: string, path: string): Promise<SyncRecord | undefined>;
  pool: SessionPool;
  log: Logger;
  /** How long an actor holds an entry (longer than the few commands of one action can take). */
  claimMs: number;
  /** First retry after a failure; doubles per failed attempt up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Entries one poller pass tries at most (the rest wait for the next poll). */
  passLimit?: number;
  /** Metrics side channel. */
  onOutcome?: (org: string, action: PendingAction['action'], outcome: AfterSyncOutcome) => void;
  now?: () => number;
}

export interface AfterSync {
  /**
   * Records the pending action of a version that is about to be marked synced (a recording: before
   * `markSynced`, so a crash right after it cannot lose the action) or was just indexed (a call
   * record). Nothing for `afterSync: keep`.
   */
  record(tenant: TenantConfig, v: Version, key: string, syncedAt: number): Promise<void>;
  /** Tries the pending action of this version now, on the job's session. Never throws. */
  run(tenant: TenantConfig, v: Version, session: SourceSession): Promise<AfterSyncOutcome | undefined>;
  /**
   * A job that found its version in S3 already: tries the action if one is pending for this version,
   * with a session of its own (none free: left to the poller). Never throws.
   */
  runPending(tenant: TenantConfig, v: Version): Promise<void>;
  /** The poller's pass over a tenant's due entries (after each poll, under the poll lock). Never throws. */
  pass(tenant: TenantConfig): Promise<{ tried: number }>;
}

/** Backoff before attempt `attempts + 1`: base × 2^(attempts − 1), capped. */
function afterSyncBackoff(attempts: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.min(20, Math.max(0, attempts - 1)));
}

/** Entries recorded for a version that never got marked synced are dropped after this long. */
const ORPHAN_MS = 24 * 3_600_000;

const dirOf = (path: string) => `/${path.slice(0, Math.max(0, path.lastIndexOf('/')))}`;
const nameOf = (path: string) => path.slice(path.lastIndexOf('/') + 1);

export function makeAfterSync(deps: AfterSyncDeps): AfterSync {
  const now = deps.now ?? Date.now;
  const base = deps.backoffMs ?? 30_000;
  const max = deps.maxBackoffMs ?? 3_600_000;
  const count = (org: string, action: PendingAction['action'], outcome: AfterSyncOutcome) => {
    try {
      deps.onOutcome?.(org, action, outcome);
    } catch {
      /* a side channel */
    }
  };

  /** One attempt on `session` of an entry already claimed. */
  async function attempt(
    tenant: TenantConfig,
    entry: PendingAction,
    session: SourceSession,
    log: Logger,
  ): Promise<AfterSyncOutcome> {
    const { org } = tenant;
    const synced = await deps.getSynced(org, entry.path);
    if (!synced || !sameVersion(synced, entry)) {
      if (synced || now() - entry.since > ORPHAN_MS) {
        // Another version is the synced one (or this one never was): nothing of this entry is safe.
        await deps.store.finish(org, entry.path, entry);
        log.info({ synced: Boolean(synced) }, 'after-sync: version not the synced one: dropped');
        return 'changed';
      }
      // Recorded just before markSynced, which has not happened yet (or the job will retry it).
      await deps.store.unclaim(org, entry.path, entry, now() + base);
      return 'busy';
    }
    // The listing right before acting: what is on the server now, not what was listed at the poll.
    const listed = (await session.list(dirOf(entry.path))).find(
      (e) => e.name === nameOf(entry.path) && e.type === 'file',
    );
    if (!listed) {
      if (entry.action === 'move' && entry.target && (await atTarget(session, entry))) return 'done';
      return 'gone';
    }
    if (!sameVersion(listed, entry)) {
      log.info(
        { now: { size: listed.size, mtime: listed.mtime }, synced: { size: entry.size, mtime: entry.mtime } },
        'after-sync: the file changed since it was synced: kept (the next poll syncs the new version)',
      );
      return 'changed';
    }
    const source = `/${entry.path}`;
    try {
      if (entry.action === 'delete') {
        if (!session.remove) throw new Error('the source adapter cannot delete');
        await session.remove(source);
      } else {
        const target = entry.target;
        if (!target) throw new Error('no move target recorded');
        if (!session.rename) throw new Error('the source adapter cannot rename');
        // Checked per file as well as at load: a target the poll would list again is never used.
        if (wouldResync(tenant, target)) {
          throw new Error(
            `move target ${target} is inside the watched directories and would be synced again`,
          );
        }
        await session.mkdir?.(parentDir(target));
        await session.rename(source, target);
      }
    } catch (err) {
      // Gone between the listing and the command (another actor, the customer): nothing left to do.
      if (causeOf(err, NotFoundError)) {
        const again = (await session.list(dirOf(entry.path))).some((e) => e.name === nameOf(entry.path));
        if (!again) return 'gone';
      }
      throw err;
    }
    return 'done';
  }

  /** `move` after a crash between RNTO and clearing the entry: the file is at its target already. */
  async function atTarget(session: SourceSession, entry: PendingAction): Promise<boolean> {
    const target = entry.target!;
    try {
      const found = (await session.list(parentDir(target))).find((e) => e.name === nameOf(target));
      return found?.type === 'file' && found.size === entry.size;
    } catch {
      return false;
    }
  }

  /** Claims, tries once, and records the result. Never throws. */
  async function act(
    tenant: TenantConfig,
    v: Version,
    session: SourceSession,
  ): Promise<AfterSyncOutcome | undefined> {
    const { org } = tenant;
    const log = deps.log.child({ org, path: v.path, afterSync: true });
    let entry: PendingAction | undefined;
    try {
      entry = await deps.store.claim(org, v.path, v, now(), deps.claimMs);
      if (!entry) return undefined;
      const outcome = await attempt(tenant, entry, session, log);
      if (outcome !== 'busy' && outcome !== 'failed') await deps.store.finish(org, v.path, entry);
      if (outcome === 'done') {
        log.info(
          entry.action === 'move' ? { action: 'move', target: entry.target } : { action: 'delete' },
          'after-sync: done',
        );
      } else if (outcome === 'gone') log.info({ action: entry.action }, 'after-sync: file already gone');
      if (outcome !== 'busy') count(org, entry.action, outcome);
      return outcome;
    } catch (e) {
      if (!entry) {
        log.warn({ err: toError(e).message }, 'after-sync: cannot read the pending action');
        return undefined;
      }
      const err = toError(e);
      const attempts = entry.attempts + 1;
      const wait = afterSyncBackoff(attempts, base, max);
      log.warn(
        { action: entry.action, err: err.message, attempts, retryInMs: wait },
        'after-sync: failed, will retry',
      );
      count(org, entry.action, 'failed');
      await deps.store
        .fail(org, v.path, entry, err.message.slice(0, 500), now(), now() + wait)
        .catch(() => {});
      return 'failed';
    }
  }

  return {
    async record(tenant, v, key, syncedAt) {
      if (tenant.afterSync === 'keep') return;
      // No target without a template (a stored onboarded tenant that skipped validation): recorded
      // anyway, so the failure shows in status instead of the file silently staying.
      let target: string | undefined;
      if (tenant.afterSync === 'move' && tenant.moveTo) {
        try {
          target = expandMoveTo(tenant.moveTo, v.path, syncedAt);
        } catch {
          target = undefined;
        }
      }
      await deps.store.record(
        tenant.org,
        { path: v.path, size: v.size, mtime: v.mtime, action: tenant.afterSync, target, key },
        now(),
      );
    },
    run: (tenant, v, session) => act(tenant, v, session),
    async runPending(tenant, v) {
      if (tenant.afterSync === 'keep') return;
      try {
        const entry = await deps.store.get(tenant.org, v.path);
        if (!entry || !sameVersion(entry, v) || entry.next > now()) return;
        const lease = await deps.pool.acquire(tenant);
        if (!lease) return;
        try {
          await act(tenant, v, lease.session);
        } finally {
          await deps.pool.release(lease);
        }
      } catch (err) {
        deps.log.warn({ org: tenant.org, path: v.path, err: toError(err).message }, 'after-sync: skipped');
      }
    },
    async pass(tenant) {
      let tried = 0;
      // `keep` (perhaps switched to after entries were recorded) touches nothing; the entries stay
      // visible in status and are acted on if the action is turned on again.
      if (tenant.afterSync === 'keep') return { tried };
      try {
        const due = await deps.store.due(tenant.org, now(), deps.passLimit ?? 100);
        if (!due.length) return { tried };
        const lease = await deps.pool.acquire(tenant);
        if (!lease) return { tried };
        try {
          for (const entry of due) {
            if (!lease.session.healthy) break;
            tried++;
            await act(tenant, entry, lease.session);
          }
        } finally {
          await deps.pool.release(lease);
        }
      } catch (err) {
        deps.log.warn({ org: tenant.org, err: toError(err).message }, 'after-sync pass failed');
      }
      return { tried };
    },
  };
}

/** Whether the job must wait for the manifest indexer before recording (call records). */
export const afterIndexing = (path: string) => isCallRecord(path);
