/**
 * An in-memory `SyncStateStore` that keeps the Redis adapter's semantics (adapters/redis-state.ts),
 * proven by the conformance suite (test/conformance/sync-state.ts) that runs against both:
 * - records are stored as JSON text and parsed on every read, so callers never share an object with
 *   the store and a field that is `undefined` disappears, as it does through Redis;
 * - `markSynced` counts a version (size, mtime) once, unparks it and forgets its seen record; the
 *   record's ETag is not kept;
 * - the pending call records are a scored set (first-listed time; 0 once settled): `jobCheck` counts
 *   those listed since `pendingSince` except the job's own version, `notePendingManifests` adds with
 *   NX and drops versions no longer listed, `manifestSettled` only settles a version that is there;
 * - the tenant's counters, health and poll notes live in one `info` record that `clear` removes.
 */
import type {
  IndexedRow,
  PollNotes,
  ReportSummary,
  SeenRecord,
  SyncStateStore,
  TenantInfo,
  Version,
} from '../../../src/ports/sync-state.js';
import {
  METADATA_SOURCES,
  type MetadataSource,
  type ParkedRecord,
  type SyncRecord,
} from '../../../src/types.js';

interface OrgState {
  synced: Map<string, string>;
  seen: Map<string, string>;
  parked: Map<string, string>;
  manifest: Map<string, string>;
  reports: Map<string, string>;
  /** member (path, size, mtime) → score: first listed (ms), 0 once settled. */
  pending: Map<string, number>;
  info: Map<string, string | number>;
}

const member = (v: Version) => `${v.path}\n${v.size}\n${v.mtime}`;

function parse<T>(v: string | undefined): T | undefined {
  if (!v) return undefined;
  try {
    return JSON.parse(v) as T;
  } catch {
    return undefined;
  }
}

function parseList(v: string | number | undefined): string[] {
  if (typeof v !== 'string' || !v) return [];
  try {
    const a = JSON.parse(v);
    return Array.isArray(a) ? a.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

export interface MemoryState extends SyncStateStore {
  /** Every tenant with any state (tests check that `clear` leaves nothing behind). */
  orgs(): string[];
}

export function makeMemoryState(opts: { now?: () => number } = {}): MemoryState {
  const now = opts.now ?? Date.now;
  const orgs = new Map<string, OrgState>();
  const of = (org: string): OrgState => {
    let s = orgs.get(org);
    if (!s) {
      s = {
        synced: new Map(),
        seen: new Map(),
        parked: new Map(),
        manifest: new Map(),
        reports: new Map(),
        pending: new Map(),
        info: new Map(),
      };
      orgs.set(org, s);
    }
    return s;
  };
  const incr = (info: OrgState['info'], field: string, by: number) =>
    info.set(field, Number(info.get(field) ?? 0) + by);
  const num = (v: string | number | undefined) => (v === undefined ? undefined : Number(v));
  const text = (v: string | number | undefined) => (v === undefined || v === '' ? undefined : String(v));

  return {
    async lookup(org, paths) {
      const s = of(org);
      return {
        synced: paths.map((p) => parse<SyncRecord>(s.synced.get(p))),
        seen: paths.map((p) => parse<SeenRecord>(s.seen.get(p))),
      };
    },
    async replaceSeen(org, seen) {
      of(org).seen = new Map([...seen].map(([p, r]) => [p, JSON.stringify(r)]));
    },
    async getSynced(org, path) {
      return parse<SyncRecord>(of(org).synced.get(path));
    },
    async jobCheck(org, path, { manifestRefs: refs = [], pendingSince = 1, version } = {}) {
      const s = of(org);
      const synced = parse<SyncRecord>(s.synced.get(path));
      const health = text(s.info.get('health'));
      const own = version ? (s.pending.get(member(version)) ?? 0) : 0;
      let pending = [...s.pending.values()].filter((score) => score >= pendingSince).length;
      if (own >= pendingSince) pending -= 1;
      let manifestRow: IndexedRow | null | undefined;
      if (refs.length) {
        manifestRow = null;
        for (const ref of refs) {
          const row = parse<IndexedRow>(s.manifest.get(ref));
          if (row) {
            manifestRow = row;
            break;
          }
        }
      }
      return {
        ...(synced && { synced }),
        ...(health === 'unhealthy' && { unhealthy: text(s.info.get('reason')) ?? 'unhealthy' }),
        ...(manifestRow !== undefined && { manifestRow }),
        pendingManifests: pending,
        selfPending: own > 0,
      };
    },
    async markSynced(org, path, rec, source, opts = {}) {
      const s = of(org);
      const old = parse<SyncRecord>(s.synced.get(path));
      // The ETag is not kept (as in Redis: nothing reads it back).
      const { etag: _etag, ...kept } = rec;
      s.synced.set(path, JSON.stringify(kept));
      s.seen.delete(path);
      s.parked.delete(path);
      if (!(old && String(old.size) === String(rec.size) && old.mtime === rec.mtime)) {
        incr(s.info, 'files', 1);
        incr(s.info, 'bytes', rec.size);
        if (source) incr(s.info, `meta:${source}`, 1);
      }
      const refs = opts.manifestRefs ?? [];
      if (!refs.length) return {};
      for (const ref of refs) {
        const row = parse<IndexedRow>(s.manifest.get(ref));
        if (row) return { manifestRow: row };
      }
      return { manifestRow: null };
    },
    async recountSource(org, from, to) {
      if (from === to) return;
      const s = of(org);
      incr(s.info, `meta:${to}`, 1);
      if (from) incr(s.info, `meta:${from}`, -1);
    },
    async notePendingManifests(org, pending, listed, at) {
      const s = of(org);
      const listedNow = new Set(listed.map(member));
      const gone = [...s.pending.keys()].filter((m) => !listedNow.has(m));
      for (const v of pending) if (!s.pending.has(member(v))) s.pending.set(member(v), at);
      for (const m of gone) s.pending.delete(m);
    },
    async manifestSettled(org, version) {
      const s = of(org);
      if (s.pending.has(member(version))) s.pending.set(member(version), 0);
    },
    async allSynced(org) {
      const out = new Map<string, SyncRecord>();
      for (const [p, v] of of(org).synced) {
        const rec = parse<SyncRecord>(v);
        if (rec) out.set(p, rec);
      }
      return out;
    },
    async forgetSynced(org, paths) {
      for (const p of paths) of(org).synced.delete(p);
    },
    async park(org, rec) {
      of(org).parked.set(rec.path, JSON.stringify(rec));
    },
    async unpark(org, path) {
      of(org).parked.delete(path);
    },
    async parked(org) {
      return [...of(org).parked.values()]
        .map((v) => parse<ParkedRecord>(v))
        .filter((r): r is ParkedRecord => r !== undefined);
    },
    async parkedCount(org) {
      return of(org).parked.size;
    },
    async getParked(org, path) {
      return parse<ParkedRecord>(of(org).parked.get(path));
    },
    async info(org) {
      const h = of(org).info;
      return {
        health: (text(h.get('health')) as TenantInfo['health'] | undefined) ?? 'unknown',
        reason: text(h.get('reason')),
        since: num(h.get('since')),
        lastPollAt: num(h.get('lastPollAt')),
        lastPollMs: num(h.get('lastPollMs')),
        lastPollFiles: num(h.get('lastPollFiles')),
        files: Number(h.get('files') ?? 0),
        bytes: Number(h.get('bytes') ?? 0),
        lastError: text(h.get('lastError')),
        lastErrorAt: num(h.get('lastErrorAt')),
        pollFailures: Number(h.get('pollFailures') ?? 0),
        lastFailureAt: num(h.get('lastFailureAt')),
        bySource: Object.fromEntries(
          METADATA_SOURCES.map((src) => [src, Math.max(0, Number(h.get(`meta:${src}`) ?? 0))]),
        ) as Record<MetadataSource, number>,
      };
    },
    async setHealth(org, health, reason, opts = {}) {
      const h = of(org).info;
      const prev = (text(h.get('health')) as TenantInfo['health'] | undefined) ?? 'unknown';
      h.set('health', health);
      h.set('reason', reason ?? '');
      if (prev !== health) h.set('since', now());
      if (health === 'ok') h.set('pollFailures', 0);
      else if (opts.poll) {
        incr(h, 'pollFailures', 1);
        h.set('lastFailureAt', now());
      }
      return prev;
    },
    async recordPoll(org, p) {
      const h = of(org).info;
      h.set('lastPollAt', p.at);
      h.set('lastPollMs', p.ms);
      h.set('lastPollFiles', p.files);
    },
    async recordError(org, message) {
      const h = of(org).info;
      h.set('lastError', message);
      h.set('lastErrorAt', now());
    },
    async indexManifest(org, rows) {
      const s = of(org);
      for (const [ref, row] of rows) s.manifest.set(ref, JSON.stringify(row));
    },
    async findManifestRow(org, refs) {
      const s = of(org);
      for (const ref of refs) {
        const row = parse<IndexedRow>(s.manifest.get(ref));
        if (row) return row;
      }
      return undefined;
    },
    async recordReport(org, summary: ReportSummary) {
      of(org).reports.set(summary.path, JSON.stringify(summary));
    },
    async reports(org) {
      return [...of(org).reports.values()]
        .map((v) => parse<ReportSummary>(v))
        .filter((r): r is ReportSummary => r !== undefined);
    },
    async recordPollNotes(org, notes: PollNotes) {
      const h = of(org).info;
      h.set('missingDirs', JSON.stringify(notes.missingDirs));
      h.set('unsyncable', notes.unsyncable.count);
      h.set('unsyncableSample', JSON.stringify(notes.unsyncable.sample));
    },
    async pollNotes(org) {
      const h = of(org).info;
      return {
        missingDirs: parseList(h.get('missingDirs')),
        unsyncable: {
          count: Number(h.get('unsyncable') ?? 0) || 0,
          sample: parseList(h.get('unsyncableSample')),
        },
      };
    },
    async clear(org) {
      orgs.delete(org);
    },
    // One layout only: nothing to migrate.
    migrate: async () => 0,
    orgs() {
      // A tenant whose every piece of state is empty has none (as Redis drops an empty key).
      return [...orgs]
        .filter(([, s]) => Object.values(s).some((m: Map<string, unknown>) => m.size > 0))
        .map(([org]) => org);
    },
  };
}
