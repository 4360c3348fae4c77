/**
 * One conformance suite for the `SyncStateStore` port: the Redis adapter and the in-memory fake must
 * both pass it, so the fake can stand in for Redis in the fast suites. It pins what the domain relies
 * on, including each of the Redis adapter's scripts' semantics: a version counted once, the pending
 * call records (first-listed time kept, settled ones not counted, the job's own version excluded,
 * versions no longer listed forgotten), manifest rows most specific first, health with the poll
 * failure count, parked records, reports, poll notes, and `clear`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IndexedRow, SyncStateStore, Version } from '../../src/ports/sync-state.js';
import type { ParkedRecord, SyncRecord } from '../../src/types.js';

export interface SyncStateFixture {
  state: SyncStateStore;
  /** True when nothing of the tenant's state is left (no key, no record). */
  isEmpty(org: string): Promise<boolean>;
  stop(): Promise<void>;
}

const rec = (size: number, mtime: string, extra: Partial<SyncRecord> = {}): SyncRecord => ({
  size,
  mtime,
  key: `k/${size}/${mtime}`,
  syncedAt: 1_700_000_000_000,
  ...extra,
});
const row = (email: string, file: string): IndexedRow => ({
  email,
  dateOfCall: '2024-03-05',
  line: 2,
  file,
  manifest: 'calls/manifest.csv',
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function describeSyncStateConformance(
  name: string,
  makeFixture: () => Promise<SyncStateFixture>,
): void {
  describe(`SyncStateStore conformance: ${name}`, () => {
    let fx: SyncStateFixture;
    let s: SyncStateStore;
    // Every test its own tenant: no test sees another's state.
    let n = 0;
    const tag = randomBytes(3).toString('hex');
    const freshOrg = () => `org-${tag}-${++n}`;

    beforeAll(async () => {
      fx = await makeFixture();
      s = fx.state;
    });
    afterAll(async () => {
      await fx?.stop();
    });

    describe('synced and seen records', () => {
      it('looks up many paths at once, aligned with the paths asked, undefined where none', async () => {
        const org = freshOrg();
        expect(await s.lookup(org, [])).toEqual({ synced: [], seen: [] });
        await s.markSynced(org, 'a.wav', rec(10, 'm1'));
        await s.replaceSeen(org, new Map([['b.wav', { size: 5, mtime: 'm2', firstSeen: 42 }]]));
        const got = await s.lookup(org, ['x.wav', 'a.wav', 'b.wav']);
        expect(got.synced).toEqual([undefined, rec(10, 'm1'), undefined]);
        expect(got.seen).toEqual([undefined, undefined, { size: 5, mtime: 'm2', firstSeen: 42 }]);
      });

      it('looks up more paths than one round trip chunk holds', async () => {
        const org = freshOrg();
        const paths = Array.from({ length: 2_345 }, (_, i) => `d/${i}.wav`);
        await s.replaceSeen(org, new Map(paths.map((p, i) => [p, { size: i, mtime: 'm', firstSeen: i }])));
        const got = await s.lookup(org, paths);
        expect(got.seen.length).toBe(paths.length);
        expect(got.seen[2_000]).toEqual({ size: 2_000, mtime: 'm', firstSeen: 2_000 });
        expect(got.synced.every((x) => x === undefined)).toBe(true);
      });

      it('replaces the whole seen set, and an empty map clears it', async () => {
        const org = freshOrg();
        await s.replaceSeen(org, new Map([['a.wav', { size: 1, mtime: 'm', firstSeen: 1 }]]));
        await s.replaceSeen(org, new Map([['b.wav', { size: 2, mtime: 'm', firstSeen: 2 }]]));
        expect((await s.lookup(org, ['a.wav', 'b.wav'])).seen).toEqual([
          undefined,
          { size: 2, mtime: 'm', firstSeen: 2 },
        ]);
        await s.replaceSeen(org, new Map());
        expect((await s.lookup(org, ['b.wav'])).seen).toEqual([undefined]);
      });

      it('stores records as data: no undefined fields come back, and a caller cannot change a stored record', async () => {
        const org = freshOrg();
        const r = { ...rec(3, 'm'), etag: undefined };
        await s.markSynced(org, 'a.wav', r);
        const got = await s.getSynced(org, 'a.wav');
        expect(got).toStrictEqual(rec(3, 'm'));
        got!.size = 999;
        r.size = 998;
        expect((await s.getSynced(org, 'a.wav'))?.size).toBe(3);
        expect(await s.getSynced(org, 'missing.wav')).toBeUndefined();
      });

      it('lists every synced path, and forgets some without touching the counters', async () => {
        const org = freshOrg();
        await s.markSynced(org, 'a.wav', rec(1, 'm'));
        // The ETag is not kept: nothing reads it back, and it would be a third of a record.
        await s.markSynced(org, 'd/b.wav', rec(2, 'm', { etag: '"e"' }));
        expect(await s.allSynced(org)).toStrictEqual(
          new Map([
            ['a.wav', rec(1, 'm')],
            ['d/b.wav', rec(2, 'm')],
          ]),
        );
        await s.forgetSynced(org, ['a.wav', 'never.wav']);
        await s.forgetSynced(org, []);
        expect([...(await s.allSynced(org)).keys()]).toEqual(['d/b.wav']);
        expect(await s.getSynced(org, 'a.wav')).toBeUndefined();
        const info = await s.info(org);
        expect([info.files, info.bytes]).toEqual([2, 3]);
      });
    });

    describe('many records', () => {
      it('keeps every record of a tenant with thousands of paths: looked up, listed, forgotten, counted', async () => {
        const org = freshOrg();
        const n = 5_000;
        const path = (i: number) => `rec/2026/12/02/agent-${i % 50}/call-${i}.wav`;
        const mtime = (i: number) => new Date(1_764_000_000_000 + i * 1000).toISOString();
        for (let i = 0; i < n; i += 500)
          await Promise.all(
            Array.from({ length: 500 }, (_, j) =>
              s.markSynced(org, path(i + j), {
                size: i + j,
                mtime: mtime(i + j),
                key: `acme/${path(i + j)}`,
                syncedAt: i + j,
              }),
            ),
          );
        const paths = Array.from({ length: n }, (_, i) => path(i));
        const got = await s.lookup(org, [...paths, 'missing.wav']);
        expect(got.synced.filter(Boolean).length).toBe(n);
        expect(got.synced[4_321]).toStrictEqual({
          size: 4_321,
          mtime: mtime(4_321),
          key: `acme/${path(4_321)}`,
          syncedAt: 4_321,
        });
        expect(got.synced[n]).toBeUndefined();
        const all = await s.allSynced(org);
        expect(all.size).toBe(n);
        expect(all.get(path(17))).toStrictEqual({
          size: 17,
          mtime: mtime(17),
          key: `acme/${path(17)}`,
          syncedAt: 17,
        });
        await s.forgetSynced(org, paths.slice(0, 2_500));
        expect((await s.allSynced(org)).size).toBe(2_500);
        expect(await s.getSynced(org, path(0))).toBeUndefined();
        expect(await s.getSynced(org, path(2_500))).toMatchObject({ size: 2_500 });
        expect((await s.info(org)).files).toBe(n);
      });

      it('gives back any mtime text, key and path as stored (LIST times, odd keys, long names)', async () => {
        const org = freshOrg();
        const cases: [string, SyncRecord][] = [
          ['a.wav', rec(0, 'Dec 02 10:52')],
          ['b.wav', rec(1, 'Jan 05  2024', { key: 'elsewhere/b.wav.bak' })],
          ['c.wav', rec(2, '~tilde', { key: 'c.wav' })],
          ['d.wav', rec(3, '~~two', { key: '' })],
          ['e.wav', rec(4, '2026-12-02T10:52:15.123Z', { key: 'p/e.wav' })],
          ['f.wav', rec(5, '2026-12-02T10:52:15Z')],
          [`${'x'.repeat(300)}/g.wav`, rec(6, '', { key: `k/${'x'.repeat(300)}/g.wav` })],
          ['ü/ß 😀.wav', rec(7, 'm', { key: 'acme/ü/ß 😀.wav' })],
        ];
        for (const [p, r] of cases) await s.markSynced(org, p, r);
        for (const [p, r] of cases) expect(await s.getSynced(org, p)).toStrictEqual(r);
        expect(await s.allSynced(org)).toStrictEqual(new Map(cases));
      });
    });

    describe('markSynced', () => {
      it('counts a version once: marked again (a re-run, a HEAD that found it) it is not counted again', async () => {
        const org = freshOrg();
        await s.markSynced(org, 'a.wav', rec(100, 'm1'), 'pattern');
        await s.markSynced(org, 'a.wav', rec(100, 'm1', { syncedAt: 5, key: 'other' }), 'pattern');
        let info = await s.info(org);
        expect([info.files, info.bytes, info.bySource.pattern]).toEqual([1, 100, 1]);
        // The record is the latest one all the same.
        expect(await s.getSynced(org, 'a.wav')).toEqual(rec(100, 'm1', { syncedAt: 5, key: 'other' }));
        // A new version of the path (another mtime, or another size) is counted.
        await s.markSynced(org, 'a.wav', rec(100, 'm2'), 'manifest');
        await s.markSynced(org, 'a.wav', rec(120, 'm2'), 'manifest');
        info = await s.info(org);
        expect([info.files, info.bytes]).toEqual([3, 320]);
        expect(info.bySource).toEqual({ manifest: 2, pattern: 1, defaults: 0, partial: 0, api: 0, none: 0 });
      });

      it('counts by metadata source only when one is given', async () => {
        const org = freshOrg();
        await s.markSynced(org, 'a.csv', rec(7, 'm'));
        await s.markSynced(org, 'b.wav', rec(8, 'm'), 'none');
        await s.markSynced(org, 'c.wav', rec(9, 'm'), 'defaults');
        await s.markSynced(org, 'd.wav', rec(1, 'm'), 'partial');
        const info = await s.info(org);
        expect([info.files, info.bytes]).toEqual([4, 25]);
        expect(info.bySource).toEqual({ manifest: 0, pattern: 0, defaults: 1, partial: 1, api: 0, none: 1 });
      });

      it('with manifest refs, gives the row of the first ref that has one, as stored then (null: none)', async () => {
        const org = freshOrg();
        const refs = ['calls/day1/a.wav', 'day1/a.wav', 'a.wav'];
        // No refs asked: no row in the answer, and nothing else changes.
        expect(await s.markSynced(org, 'calls/day1/a.wav', rec(1, 'm'), 'pattern')).toStrictEqual({});
        expect(
          await s.markSynced(org, 'calls/day1/a.wav', rec(2, 'm'), 'pattern', { manifestRefs: refs }),
        ).toStrictEqual({ manifestRow: null });
        const byName = row('name@acme.example', 'a.wav');
        const byTail = row('tail@acme.example', 'day1/a.wav');
        await s.indexManifest(org, new Map([['a.wav', byName]]));
        expect(
          (await s.markSynced(org, 'calls/day1/a.wav', rec(3, 'm'), 'pattern', { manifestRefs: refs }))
            .manifestRow,
        ).toEqual(byName);
        await s.indexManifest(org, new Map([['day1/a.wav', byTail]]));
        expect(
          (await s.markSynced(org, 'calls/day1/a.wav', rec(4, 'm'), undefined, { manifestRefs: refs }))
            .manifestRow,
        ).toEqual(byTail);
        // The write itself is the same with or without refs: each version counted once, by source.
        const info = await s.info(org);
        expect(info.files).toBe(4);
        expect(info.bySource.pattern).toBe(3);
        expect(await s.getSynced(org, 'calls/day1/a.wav')).toMatchObject({ size: 4, mtime: 'm' });
      });

      it('unparks the path and forgets its seen record, and only that path', async () => {
        const org = freshOrg();
        const parked = (path: string): ParkedRecord => ({
          path,
          jobId: `j-${path}`,
          reason: 'allocation-exceeded',
          since: 1,
        });
        await s.park(org, parked('a.wav'));
        await s.park(org, parked('b.wav'));
        await s.replaceSeen(
          org,
          new Map([
            ['a.wav', { size: 1, mtime: 'm', firstSeen: 1 }],
            ['b.wav', { size: 1, mtime: 'm', firstSeen: 1 }],
          ]),
        );
        await s.markSynced(org, 'a.wav', rec(1, 'm'));
        expect(await s.getParked(org, 'a.wav')).toBeUndefined();
        expect((await s.parked(org)).map((p) => p.path)).toEqual(['b.wav']);
        expect((await s.lookup(org, ['a.wav', 'b.wav'])).seen).toEqual([
          undefined,
          { size: 1, mtime: 'm', firstSeen: 1 },
        ]);
      });

      it('moves a recording between metadata-source counts (metadata updated in place), never below 0', async () => {
        const org = freshOrg();
        await s.markSynced(org, 'a.wav', rec(1, 'm'), 'pattern');
        await s.recountSource(org, 'pattern', 'manifest');
        expect((await s.info(org)).bySource).toMatchObject({ pattern: 0, manifest: 1 });
        await s.recountSource(org, 'manifest', 'manifest');
        expect((await s.info(org)).bySource).toMatchObject({ pattern: 0, manifest: 1 });
        // An object uploaded before sources were counted: only the new count moves.
        await s.recountSource(org, undefined, 'manifest');
        expect((await s.info(org)).bySource).toMatchObject({ manifest: 2 });
        await s.recountSource(org, 'defaults', 'manifest');
        const info = await s.info(org);
        expect(info.bySource).toEqual({ manifest: 3, pattern: 0, defaults: 0, partial: 0, api: 0, none: 0 });
        expect(info.files).toBe(1);
      });
    });

    describe('jobCheck', () => {
      const v = (path: string, size = 10, mtime = 'm'): Version => ({ path, size, mtime });

      it('answers a tenant with no state: nothing synced, healthy, nothing pending, no manifest row asked', async () => {
        const org = freshOrg();
        expect(await s.jobCheck(org, 'a.wav')).toStrictEqual({ pendingManifests: 0, selfPending: false });
        expect(
          await s.jobCheck(org, 'a.wav', { manifestRefs: ['a.wav'], version: v('a.wav') }),
        ).toStrictEqual({ manifestRow: null, pendingManifests: 0, selfPending: false });
      });

      it('gives the sync record and the reason of an unhealthy tenant, nothing for a healthy one', async () => {
        const org = freshOrg();
        await s.markSynced(org, 'a.wav', rec(10, 'm'));
        await s.setHealth(org, 'unhealthy', '530 Login incorrect');
        expect(await s.jobCheck(org, 'a.wav')).toStrictEqual({
          synced: rec(10, 'm'),
          unhealthy: '530 Login incorrect',
          pendingManifests: 0,
          selfPending: false,
        });
        await s.setHealth(org, 'unhealthy');
        expect((await s.jobCheck(org, 'a.wav')).unhealthy).toBe('unhealthy');
        await s.setHealth(org, 'ok');
        expect(await s.jobCheck(org, 'b.wav')).toStrictEqual({ pendingManifests: 0, selfPending: false });
      });

      it('gives the manifest row of the first ref that has one (most specific first)', async () => {
        const org = freshOrg();
        const byName = row('name@acme.example', 'a.wav');
        const byTail = row('tail@acme.example', 'day1/a.wav');
        await s.indexManifest(
          org,
          new Map([
            ['a.wav', byName],
            ['day1/a.wav', byTail],
          ]),
        );
        const refs = (p: string) => p.split('/').map((_, i, a) => a.slice(i).join('/'));
        expect(
          (await s.jobCheck(org, 'calls/day1/a.wav', { manifestRefs: refs('calls/day1/a.wav') })).manifestRow,
        ).toEqual(byTail);
        expect(
          (await s.jobCheck(org, 'calls/day2/a.wav', { manifestRefs: refs('calls/day2/a.wav') })).manifestRow,
        ).toEqual(byName);
        expect(
          (await s.jobCheck(org, 'calls/day2/b.wav', { manifestRefs: refs('calls/day2/b.wav') })).manifestRow,
        ).toBeNull();
        // The same order through findManifestRow.
        expect(await s.findManifestRow(org, refs('calls/day1/a.wav'))).toEqual(byTail);
        expect(await s.findManifestRow(org, ['x.wav', 'a.wav', 'day1/a.wav'])).toEqual(byName);
        expect(await s.findManifestRow(org, ['x.wav'])).toBeUndefined();
        expect(await s.findManifestRow(org, [])).toBeUndefined();
      });

      it('counts the pending call records listed since pendingSince, except the job’s own version', async () => {
        const org = freshOrg();
        const [m1, m2, m3] = [v('m/1.csv'), v('m/2.csv'), v('m/3.csv')];
        await s.notePendingManifests(org, [m1, m2], [m1, m2], 1_000);
        await s.notePendingManifests(org, [m3], [m1, m2, m3], 3_000);
        expect((await s.jobCheck(org, 'r.wav')).pendingManifests).toBe(3);
        expect(await s.jobCheck(org, 'r.wav', { pendingSince: 1_000 })).toMatchObject({
          pendingManifests: 3,
        });
        expect(await s.jobCheck(org, 'r.wav', { pendingSince: 1_001 })).toMatchObject({
          pendingManifests: 1,
        });
        expect(await s.jobCheck(org, 'r.wav', { pendingSince: 3_001 })).toMatchObject({
          pendingManifests: 0,
        });
        // The call record's own job: the others, and itself as pending.
        expect(await s.jobCheck(org, m1.path, { version: m1 })).toMatchObject({
          pendingManifests: 2,
          selfPending: true,
        });
        // Own version older than pendingSince: not among those counted, so nothing is taken off.
        expect(await s.jobCheck(org, m1.path, { version: m1, pendingSince: 2_000 })).toMatchObject({
          pendingManifests: 1,
          selfPending: true,
        });
        // Another version of the same path is not the pending one.
        expect(await s.jobCheck(org, m1.path, { version: v('m/1.csv', 11) })).toMatchObject({
          pendingManifests: 3,
          selfPending: false,
        });
      });

      it('does not count a settled call record, nor call it pending for its own job', async () => {
        const org = freshOrg();
        const [m1, m2] = [v('m/1.csv'), v('m/2.csv')];
        await s.notePendingManifests(org, [m1, m2], [m1, m2], 1_000);
        await s.manifestSettled(org, m1);
        expect((await s.jobCheck(org, 'r.wav')).pendingManifests).toBe(1);
        expect(await s.jobCheck(org, m1.path, { version: m1 })).toMatchObject({
          pendingManifests: 1,
          selfPending: false,
        });
        expect(await s.jobCheck(org, m2.path, { version: m2 })).toMatchObject({
          pendingManifests: 0,
          selfPending: true,
        });
      });
    });

    describe('pending call records', () => {
      const v = (path: string, size = 10, mtime = 'm'): Version => ({ path, size, mtime });

      it('keeps the time a version was first listed (NX): noted again, it does not start over', async () => {
        const org = freshOrg();
        const m = v('m.csv');
        await s.notePendingManifests(org, [m], [m], 1_000);
        await s.notePendingManifests(org, [m], [m], 9_000);
        expect((await s.jobCheck(org, 'r.wav', { pendingSince: 2_000 })).pendingManifests).toBe(0);
        expect((await s.jobCheck(org, 'r.wav', { pendingSince: 1_000 })).pendingManifests).toBe(1);
      });

      it('keeps a settled version settled while it stays listed, even when a racing poll notes it pending', async () => {
        const org = freshOrg();
        const m = v('m.csv');
        await s.notePendingManifests(org, [m], [m], 1_000);
        await s.manifestSettled(org, m);
        await s.notePendingManifests(org, [m], [m], 2_000);
        expect(await s.jobCheck(org, m.path, { version: m })).toMatchObject({
          pendingManifests: 0,
          selfPending: false,
        });
      });

      it('forgets versions no longer listed (settled or not); one listed again later is pending again', async () => {
        const org = freshOrg();
        const [m1, m2] = [v('m/1.csv'), v('m/2.csv')];
        await s.notePendingManifests(org, [m1, m2], [m1, m2], 1_000);
        await s.manifestSettled(org, m1);
        // Neither pending nor listed: both are gone.
        await s.notePendingManifests(org, [], [], 2_000);
        expect((await s.jobCheck(org, 'r.wav')).pendingManifests).toBe(0);
        await s.notePendingManifests(org, [m1], [m1], 3_000);
        expect(await s.jobCheck(org, m1.path, { version: m1, pendingSince: 2_500 })).toMatchObject({
          pendingManifests: 0,
          selfPending: true,
        });
        expect((await s.jobCheck(org, 'r.wav', { pendingSince: 2_500 })).pendingManifests).toBe(1);
      });

      it('forgets only what is not listed; a listed version not noted pending stays as it was', async () => {
        const org = freshOrg();
        const [m1, m2, m3] = [v('m/1.csv'), v('m/2.csv'), v('m/3.csv')];
        await s.notePendingManifests(org, [m1, m2, m3], [m1, m2, m3], 1_000);
        // m1 still listed (not noted pending this time: its job is running), m2 gone, m3 a new version.
        const m3b = v('m/3.csv', 20, 'm2');
        await s.notePendingManifests(org, [m3b], [m1, m3b], 2_000);
        expect((await s.jobCheck(org, 'r.wav')).pendingManifests).toBe(2);
        expect(await s.jobCheck(org, m1.path, { version: m1 })).toMatchObject({ selfPending: true });
        expect(await s.jobCheck(org, m2.path, { version: m2 })).toMatchObject({ selfPending: false });
        expect(await s.jobCheck(org, m3.path, { version: m3 })).toMatchObject({ selfPending: false });
        expect(await s.jobCheck(org, m3.path, { version: m3b, pendingSince: 1_500 })).toMatchObject({
          pendingManifests: 0,
          selfPending: true,
        });
      });

      it('settles only a version that is pending: settling an unknown one adds nothing', async () => {
        const org = freshOrg();
        const m = v('m.csv');
        await s.manifestSettled(org, m);
        await s.notePendingManifests(org, [m], [m], 1_000);
        expect(await s.jobCheck(org, m.path, { version: m })).toMatchObject({ selfPending: true });
        expect((await s.jobCheck(org, 'r.wav')).pendingManifests).toBe(1);
      });
    });

    describe('manifest rows and reports', () => {
      it('indexes rows under their references; a later manifest replaces a reference’s row', async () => {
        const org = freshOrg();
        await s.indexManifest(org, new Map([['a.wav', row('one@acme.example', 'a.wav')]]));
        await s.indexManifest(org, new Map());
        await s.indexManifest(
          org,
          new Map([
            ['a.wav', row('two@acme.example', 'a.wav')],
            ['b.wav', row('b@acme.example', 'b.wav')],
          ]),
        );
        expect((await s.findManifestRow(org, ['a.wav']))?.email).toBe('two@acme.example');
        expect((await s.findManifestRow(org, ['b.wav']))?.email).toBe('b@acme.example');
      });

      it('keeps one report per manifest path, the latest', async () => {
        const org = freshOrg();
        expect(await s.reports(org)).toEqual([]);
        const report = (path: string, accepted: number) => ({
          path,
          key: `acme/${path}`,
          rows: 3,
          accepted,
          errorCount: 3 - accepted,
          at: 1_000 + accepted,
        });
        await s.recordReport(org, report('m/1.csv', 1));
        await s.recordReport(org, { ...report('m/2.csv', 3), matchedSynced: 2, updated: 1 });
        await s.recordReport(org, report('m/1.csv', 2));
        const got = (await s.reports(org)).sort((a, b) => a.path.localeCompare(b.path));
        expect(got).toEqual([
          report('m/1.csv', 2),
          { ...report('m/2.csv', 3), matchedSynced: 2, updated: 1 },
        ]);
      });
    });

    describe('parked records', () => {
      it('parks, replaces, lists, gets and unparks by path', async () => {
        const org = freshOrg();
        expect(await s.parked(org)).toEqual([]);
        const a: ParkedRecord = { path: 'a.wav', jobId: 'j1', reason: 'allocation-exceeded', since: 1 };
        const b: ParkedRecord = {
          path: 'b.wav',
          jobId: 'j2',
          reason: 'missing-metadata',
          detail: 'waiting for a manifest row',
          since: 2,
        };
        await s.park(org, a);
        await s.park(org, b);
        await s.park(org, { ...a, reason: 'tenant-unhealthy', detail: 'TLS', since: 3 });
        expect(await s.getParked(org, 'a.wav')).toStrictEqual({
          ...a,
          reason: 'tenant-unhealthy',
          detail: 'TLS',
          since: 3,
        });
        expect((await s.parked(org)).sort((x, y) => x.path.localeCompare(y.path))).toEqual([
          { ...a, reason: 'tenant-unhealthy', detail: 'TLS', since: 3 },
          b,
        ]);
        expect(await s.parkedCount(org)).toBe(2);
        await s.unpark(org, 'a.wav');
        await s.unpark(org, 'never.wav');
        expect(await s.getParked(org, 'a.wav')).toBeUndefined();
        expect(await s.parked(org)).toEqual([b]);
        expect(await s.parkedCount(org)).toBe(1);
      });
    });

    describe('tenant info and health', () => {
      it('starts unknown, with every counter at 0', async () => {
        const org = freshOrg();
        expect(await s.info(org)).toStrictEqual({
          health: 'unknown',
          reason: undefined,
          since: undefined,
          lastPollAt: undefined,
          lastPollMs: undefined,
          lastPollFiles: undefined,
          files: 0,
          bytes: 0,
          lastError: undefined,
          lastErrorAt: undefined,
          pollFailures: 0,
          lastFailureAt: undefined,
          bySource: { manifest: 0, pattern: 0, defaults: 0, partial: 0, api: 0, none: 0 },
        });
      });

      it('returns the health it had, sets `since` only on a change, counts failed polls until one succeeds', async () => {
        const org = freshOrg();
        const t0 = Date.now();
        expect(await s.setHealth(org, 'unhealthy', 'TLS: certificate expired', { poll: true })).toBe(
          'unknown',
        );
        let info = await s.info(org);
        expect(info).toMatchObject({
          health: 'unhealthy',
          reason: 'TLS: certificate expired',
          pollFailures: 1,
        });
        const since = info.since!;
        expect(since).toBeGreaterThanOrEqual(t0);
        expect(info.lastFailureAt).toBeGreaterThanOrEqual(t0);
        await sleep(5);
        // Still unhealthy: `since` stays, a failed poll counts, a job's failure (no `poll`) does not.
        expect(await s.setHealth(org, 'unhealthy', 'TLS again', { poll: true })).toBe('unhealthy');
        expect(await s.setHealth(org, 'unhealthy', 'a job saw it')).toBe('unhealthy');
        info = await s.info(org);
        expect(info).toMatchObject({ health: 'unhealthy', reason: 'a job saw it', since, pollFailures: 2 });
        // A success ends the series; the reason goes; `since` moves.
        expect(await s.setHealth(org, 'ok')).toBe('unhealthy');
        info = await s.info(org);
        expect(info.health).toBe('ok');
        expect(info.reason).toBeUndefined();
        expect(info.pollFailures).toBe(0);
        expect(info.since).toBeGreaterThan(since);
        // ok again is no change.
        const okSince = info.since;
        await sleep(5);
        expect(await s.setHealth(org, 'ok', undefined, { poll: true })).toBe('ok');
        expect((await s.info(org)).since).toBe(okSince);
        expect((await s.info(org)).pollFailures).toBe(0);
      });

      it('records the last poll and the last error', async () => {
        const org = freshOrg();
        const t0 = Date.now();
        await s.recordPoll(org, { at: 1_234, ms: 56, files: 7 });
        await s.recordError(org, 'list /calls: 550');
        const info = await s.info(org);
        expect(info).toMatchObject({
          lastPollAt: 1_234,
          lastPollMs: 56,
          lastPollFiles: 7,
          lastError: 'list /calls: 550',
          health: 'unknown',
        });
        expect(info.lastErrorAt).toBeGreaterThanOrEqual(t0);
      });

      it('keeps the last poll’s notes (missing directories, unsyncable names), empty before any', async () => {
        const org = freshOrg();
        expect(await s.pollNotes(org)).toEqual({ missingDirs: [], unsyncable: { count: 0, sample: [] } });
        const notes = { missingDirs: ['/gone'], unsyncable: { count: 3, sample: ['"a\\nb.wav"'] } };
        await s.recordPollNotes(org, notes);
        expect(await s.pollNotes(org)).toEqual(notes);
        await s.recordPollNotes(org, { missingDirs: [], unsyncable: { count: 0, sample: [] } });
        expect(await s.pollNotes(org)).toEqual({ missingDirs: [], unsyncable: { count: 0, sample: [] } });
      });
    });

    describe('tenants apart, and clear', () => {
      async function fill(org: string) {
        const m: Version = { path: 'm.csv', size: 1, mtime: 'm' };
        await s.markSynced(org, 'a.wav', rec(1, 'm'), 'pattern');
        await s.replaceSeen(org, new Map([['b.wav', { size: 1, mtime: 'm', firstSeen: 1 }]]));
        await s.park(org, { path: 'c.wav', jobId: 'j', reason: 'allocation-exceeded', since: 1 });
        await s.setHealth(org, 'unhealthy', 'x', { poll: true });
        await s.recordPoll(org, { at: 1, ms: 1, files: 1 });
        await s.recordError(org, 'e');
        await s.indexManifest(org, new Map([['a.wav', row('a@acme.example', 'a.wav')]]));
        await s.recordReport(org, { path: 'm.csv', key: 'k', rows: 1, accepted: 1, errorCount: 0, at: 1 });
        await s.notePendingManifests(org, [m], [m], 1_000);
        await s.recordPollNotes(org, { missingDirs: ['/x'], unsyncable: { count: 1, sample: ['"x"'] } });
      }

      it('keeps each tenant’s state apart', async () => {
        const [a, b] = [freshOrg(), freshOrg()];
        await fill(a);
        expect((await s.lookup(b, ['a.wav', 'b.wav'])).synced).toEqual([undefined, undefined]);
        expect(await s.parked(b)).toEqual([]);
        expect((await s.info(b)).health).toBe('unknown');
        expect(await s.findManifestRow(b, ['a.wav'])).toBeUndefined();
        expect((await s.jobCheck(b, 'r.wav')).pendingManifests).toBe(0);
        expect(await s.reports(b)).toEqual([]);
        expect(await s.pollNotes(b)).toEqual({ missingDirs: [], unsyncable: { count: 0, sample: [] } });
      });

      it('clears every piece of one tenant’s state, poll notes included, and no other tenant’s', async () => {
        const [a, b] = [freshOrg(), freshOrg()];
        await fill(a);
        await fill(b);
        await s.clear(a);
        expect(await fx.isEmpty(a)).toBe(true);
        expect(await fx.isEmpty(b)).toBe(false);
        expect(await s.allSynced(a)).toEqual(new Map());
        expect((await s.lookup(a, ['b.wav'])).seen).toEqual([undefined]);
        expect(await s.parked(a)).toEqual([]);
        expect((await s.info(a)).files).toBe(0);
        expect((await s.info(a)).health).toBe('unknown');
        expect(await s.findManifestRow(a, ['a.wav'])).toBeUndefined();
        expect(await s.reports(a)).toEqual([]);
        expect((await s.jobCheck(a, 'r.wav')).pendingManifests).toBe(0);
        expect(await s.pollNotes(a)).toEqual({ missingDirs: [], unsyncable: { count: 0, sample: [] } });
        // The other tenant is untouched.
        expect((await s.info(b)).files).toBe(1);
        expect((await s.jobCheck(b, 'r.wav')).pendingManifests).toBe(1);
        // A cleared tenant counts from scratch: the same version is counted again.
        await s.markSynced(a, 'a.wav', rec(1, 'm'), 'pattern');
        expect((await s.info(a)).files).toBe(1);
      });
    });
  });
}
