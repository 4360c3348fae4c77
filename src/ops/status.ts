/**
 * `status`: per tenant — health, last poll, files and bytes synced, queued/active/failed/parked,
 * last error — plus totals and queue depths. Stable JSON for scripts; the CLI renders a table.
 */
import type { BatchStore } from '../ports/batches.js';
import type { JobState } from '../ports/jobs.js';
import type { ReportSummary } from '../ports/sync-state.js';
import { parseJobId } from '../queue/jobs.js';
import type { MetadataSource, ParkedRecord } from '../types.js';
import type { OpsContext } from './context.js';

export interface TenantStatus {
  org: string;
  /** `api`: an org registered for the upload API only (a token, no FTP source). */
  origin: 'config' | 'onboarded' | 'api';
  enabled: boolean;
  /**
   * `degraded`: the last poll worked but did not find some configured directories (`missingDirs`,
   * also in `reason`); the others are synced.
   */
  health: 'ok' | 'degraded' | 'unhealthy' | 'unknown';
  reason?: string;
  /** Configured directories the last completed poll did not find. */
  missingDirs: string[];
  /** Names the last completed poll listed that cannot be synced: how many, and a few (JSON-quoted). */
  unsyncable: { count: number; sample: string[] };
  lastPollAt?: string;
  lastPollMs?: number;
  lastPollFiles?: number;
  synced: { files: number; bytes: number };
  /**
   * Recordings synced by where their call metadata came from (`manifest`, `pattern`, `defaults`,
   * `partial`: one of email and date known, `none`: neither; a later call record moves a recording
   * to `manifest`).
   */
  metadata: Record<MetadataSource, number>;
  jobs: { waiting: number; active: number; delayed: number; failed: number };
  parked: (Omit<ParkedRecord, 'since'> & { since: string })[];
  failures: { path: string; reason: string }[];
  manifests: (Omit<ReportSummary, 'at'> & { at: string })[];
  lastError?: { message: string; at?: string };
  /**
   * The tenant's after-sync action and the source files still waiting for it: `pending` in all,
   * `failing` of them with a failed attempt (retried with backoff), and the latest failure.
   */
  afterSync: {
    action: 'keep' | 'delete' | 'move';
    pending: number;
    failing: number;
    lastError?: { path: string; message: string; attempts: number; at?: string; nextAttemptAt: string };
  };
}

/**
 * A batch of files being worked through (the status page's "Batches" section). Filled by a
 * `BatchSource` given to getStatus; without one the list is empty.
 */
export interface BatchStatus {
  id: string;
  org: string;
  /** What kind of batch, as its source names it (e.g. `resync`, `zip`). */
  kind: string;
  /** Files in the batch, and how many are finished, failed or parked so far. */
  total: number;
  done: number;
  failed: number;
  parked: number;
  bytesTotal?: number;
  bytesDone?: number;
  startedAt?: string;
}

/** Where batches in progress come from (zip batches: `batchesInProgress`). */
export type BatchSource = (orgs: readonly string[]) => Promise<BatchStatus[]>;

export interface Status {
  generatedAt: string;
  tenants: TenantStatus[];
  totals: {
    tenants: number;
    unhealthy: number;
    degraded: number;
    files: number;
    bytes: number;
    parked: number;
    failed: number;
  };
  queues: { sync: Record<string, number>; poll: Record<string, number> };
  /** Batches in progress of the listed tenants; empty when no BatchSource was given. */
  batches?: BatchStatus[];
}

const iso = (ms?: number) => (ms ? new Date(ms).toISOString() : undefined);

async function countByOrg(ctx: OpsContext, states: JobState[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const id of await ctx.jobs.ids(states)) {
    const parsed = parseJobId(id);
    // A group job counts as the files it carries.
    if (parsed) out.set(parsed.org, (out.get(parsed.org) ?? 0) + (parsed.files ?? 1));
  }
  return out;
}

export interface StatusOptions {
  /** One tenant only. */
  org?: string;
  /** Batches in progress (none without it). */
  batches?: BatchSource;
}

export async function getStatus(ctx: OpsContext, opts: StatusOptions = {}): Promise<Status> {
  const sources = await ctx.tenants.list();
  // Orgs that use only the upload API have no source: their calls are counted all the same.
  const known = new Set(sources.map((t) => t.org));
  const apiOnly = (await ctx.apiTokens.orgs())
    .filter((org) => !known.has(org))
    .map((org) => ({ org, origin: 'api' as const, enabled: true, afterSync: 'keep' as const }));
  const all = [...sources, ...apiOnly];
  const tenants = opts.org ? all.filter((t) => t.org === opts.org) : all;
  if (opts.org && !tenants.length) throw new Error(`no tenant "${opts.org}" (see: ftp-sync tenants list)`);
  // Sync jobs wait in BullMQ's `prioritized` set (see queue/enqueue.ts), older ones in `wait`.
  const [waiting, active, delayed, failed] = await Promise.all(
    ([['waiting', 'prioritized'], ['active'], ['delayed'], ['failed']] as JobState[][]).map((t) =>
      countByOrg(ctx, t),
    ),
  );
  const failedJobs = await ctx.jobs.failed(200);
  const out: TenantStatus[] = [];
  for (const t of tenants) {
    const [info, parked, reports, pending, note] = await Promise.all([
      ctx.state.info(t.org),
      ctx.state.parked(t.org),
      ctx.state.reports(t.org),
      ctx.afterSync.all(t.org),
      ctx.state.pollNotes(t.org),
    ]);
    const failing = pending.filter((p) => p.attempts > 0);
    const latest = failing.sort((a, b) => (b.lastErrorAt ?? 0) - (a.lastErrorAt ?? 0))[0];
    const degraded = info.health === 'ok' && note.missingDirs.length > 0;
    out.push({
      org: t.org,
      origin: t.origin,
      enabled: t.enabled,
      health: degraded ? 'degraded' : info.health,
      reason: degraded ? `${note.missingDirs.join(', ')} not found on the server (check dirs)` : info.reason,
      missingDirs: note.missingDirs,
      unsyncable: note.unsyncable,
      lastPollAt: iso(info.lastPollAt),
      lastPollMs: info.lastPollMs,
      lastPollFiles: info.lastPollFiles,
      synced: { files: info.files, bytes: info.bytes },
      metadata: info.bySource,
      jobs: {
        waiting: waiting!.get(t.org) ?? 0,
        active: active!.get(t.org) ?? 0,
        delayed: Math.max(0, (delayed!.get(t.org) ?? 0) - parked.length),
        failed: failed!.get(t.org) ?? 0,
      },
      parked: parked.map((p) => ({ ...p, since: iso(p.since)! })),
      failures: failedJobs
        .filter((j) => j.data?.org === t.org)
        .slice(0, 20)
        .map((j) => ({ path: j.data.path, reason: j.failedReason ?? '' })),
      manifests: reports
        .filter((r) => r.errorCount > 0 || (r.updated ?? 0) > 0)
        .map((r) => ({ ...r, at: iso(r.at)! })),
      lastError: info.lastError ? { message: info.lastError, at: iso(info.lastErrorAt) } : undefined,
      afterSync: {
        action: t.afterSync,
        pending: pending.length,
        failing: failing.length,
        lastError: latest && {
          path: latest.path,
          message: latest.lastError ?? '',
          attempts: latest.attempts,
          at: iso(latest.lastErrorAt),
          nextAttemptAt: iso(latest.next) ?? new Date(0).toISOString(),
        },
      },
    });
  }
  const { sync, poll } = await ctx.jobs.counts();
  const batches = await (opts.batches ?? batchesInProgress(ctx.batches))(out.map((t) => t.org));
  return {
    generatedAt: new Date().toISOString(),
    tenants: out,
    totals: {
      tenants: out.length,
      unhealthy: out.filter((t) => t.health === 'unhealthy').length,
      degraded: out.filter((t) => t.health === 'degraded').length,
      files: out.reduce((n, t) => n + t.synced.files, 0),
      bytes: out.reduce((n, t) => n + t.synced.bytes, 0),
      parked: out.reduce((n, t) => n + t.parked.length, 0),
      failed: out.reduce((n, t) => n + t.jobs.failed, 0),
    },
    queues: { sync, poll },
    batches,
  };
}

/**
 * Zip batches not finished yet (queued, running, or with parked recordings), as `status` and the
 * status page show them: entries done (synced, duplicate, ignored), rejected and parked so far.
 */
export function batchesInProgress(store: BatchStore): BatchSource {
  return async (orgs) => {
    const lists = await Promise.all(orgs.map((org) => store.list(org)));
    return lists
      .flat()
      .filter((b) => b.state === 'queued' || b.state === 'running' || b.state === 'parked')
      .map((b) => ({
        id: b.id,
        org: b.org,
        kind: `zip (${b.via})`,
        total: b.entries,
        done: b.counts.synced + b.counts.duplicate + b.counts.ignored,
        failed: b.counts.rejected,
        parked: b.counts.parked,
        bytesTotal: b.size,
        startedAt: new Date(b.createdAt).toISOString(),
      }));
  };
}
