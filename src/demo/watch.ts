/**
 * Watching the daemon work, from the outside: the same `status` operation the CLI runs, plus the
 * per-path sync state, compared with what the scenario expects of every file.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { OpsContext } from '../ops/context.js';
import { getStatus, type Status } from '../ops/status.js';
import type { ParkedRecord } from '../types.js';
import { type DemoTenant, type Expectation, expectedFiles } from './scenario.js';

export interface FileState {
  org: string;
  path: string;
  expect: Expectation;
  /** What the sync state says now. */
  actual: { kind: 'synced' } | { kind: 'parked'; reason: ParkedRecord['reason'] } | { kind: 'pending' };
  met: boolean;
  /** The reason of a failed job for this path, if any. */
  failure?: string;
}

export interface Snapshot {
  status: Status;
  files: FileState[];
  counts: {
    synced: number;
    syncedExpected: number;
    parked: number;
    parkedExpected: number;
    /** Jobs failed for good. */
    failed: number;
    /** Jobs waiting to be tried again after an error. */
    retrying: number;
  };
  /** Sync jobs waiting or running. */
  busy: number;
  /** Every manifest has its validation report. */
  reportsDone: boolean;
  /** Every file is where it should end up and nothing is left to do. */
  settled: boolean;
}

async function takeSnapshot(ops: OpsContext, tenants: DemoTenant[]): Promise<Snapshot> {
  const status = await getStatus(ops);
  const files: FileState[] = [];
  let reportsDone = true;
  for (const t of tenants) {
    const [synced, parkedList] = await Promise.all([ops.state.allSynced(t.org), ops.state.parked(t.org)]);
    const parked = new Map(parkedList.map((p) => [p.path, p]));
    const tenantStatus = status.tenants.find((s) => s.org === t.org);
    const failures = new Map(tenantStatus?.failures.map((f) => [f.path, f.reason]));
    for (const f of expectedFiles(t)) {
      const p = parked.get(f.path);
      const actual: FileState['actual'] = synced.has(f.path)
        ? { kind: 'synced' }
        : p
          ? { kind: 'parked', reason: p.reason }
          : { kind: 'pending' };
      const met =
        actual.kind === f.expect.kind &&
        (actual.kind !== 'parked' || f.expect.kind !== 'parked' || actual.reason === f.expect.reason);
      files.push({ org: t.org, path: f.path, expect: f.expect, actual, met, failure: failures.get(f.path) });
    }
    const reported = new Set((await ops.state.reports(t.org)).map((r) => r.path));
    if (Object.keys(t.manifests).some((m) => !reported.has(m))) reportsDone = false;
  }
  const q = status.queues.sync;
  const busy = (q.waiting ?? 0) + (q.active ?? 0) + (q.prioritized ?? 0);
  const retrying = await ops.jobs.retrying();
  const count = (kind: Expectation['kind'], metOnly: boolean) =>
    files.filter((f) => f.expect.kind === kind && (!metOnly || f.met)).length;
  return {
    status,
    files,
    counts: {
      synced: count('synced', true),
      syncedExpected: count('synced', false),
      parked: count('parked', true),
      parkedExpected: count('parked', false),
      failed: status.totals.failed,
      retrying,
    },
    busy,
    reportsDone,
    settled: files.every((f) => f.met) && reportsDone && busy === 0,
  };
}

/** Nothing more will happen on its own: every file is as expected or its job failed for good. */
const stuck = (s: Snapshot) => s.busy === 0 && s.files.every((f) => f.met || f.failure !== undefined);

/**
 * Takes snapshots until the scenario has played out, a job failed for good with nothing else to
 * wait for, the deadline passes or `signal` aborts. Resolves with the last snapshot.
 */
export async function waitForOutcome(
  ops: OpsContext,
  tenants: DemoTenant[],
  opts: {
    deadline: number;
    signal: AbortSignal;
    everyMs?: number;
    /** Give up once nothing is queued and no file changed state for this long. @defaultValue 15000 */
    quietMs?: number;
    onSnapshot?: (s: Snapshot) => void;
  },
): Promise<Snapshot> {
  let last = '';
  let changedAt = Date.now();
  for (;;) {
    const snap = await takeSnapshot(ops, tenants);
    opts.onSnapshot?.(snap);
    if (snap.settled || (snap.counts.failed > 0 && stuck(snap))) return snap;
    if (Date.now() > opts.deadline || opts.signal.aborted) return snap;
    const signature = JSON.stringify(snap.files.map((f) => f.actual));
    if (signature !== last || snap.busy > 0) {
      last = signature;
      changedAt = Date.now();
    } else if (Date.now() - changedAt > (opts.quietMs ?? 15_000)) {
      return snap;
    }
    await delay(opts.everyMs ?? 250, undefined, { signal: opts.signal }).catch(() => {});
  }
}
