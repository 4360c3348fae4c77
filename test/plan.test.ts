import { describe, expect, it } from 'vitest';
import { planPoll, sameVersion } from '../src/sync/plan.js';
import type { RemoteFile } from '../src/types.js';

const list = (path: string, size: number, mtime = 'Nov 23 18:42'): RemoteFile => ({
  path,
  size,
  mtime,
  mtimeExact: false,
});
const NOW = Date.parse('2026-11-23T19:00:00Z');

describe('planPoll', () => {
  it('does not enqueue a version seen for the first time', () => {
    const p = planPoll({
      files: [list('a.wav', 10)],
      synced: [undefined],
      seen: [undefined],
      now: NOW,
      minFileAge: 0,
    });
    expect(p.enqueue).toEqual([]);
    expect(p.seen.get('a.wav')).toEqual({ size: 10, mtime: 'Nov 23 18:42', firstSeen: NOW });
  });

  it('enqueues a version unchanged since the last poll and old enough', () => {
    const seen = { size: 10, mtime: 'Nov 23 18:42', firstSeen: NOW - 60_000 };
    const p = planPoll({
      files: [list('a.wav', 10)],
      synced: [undefined],
      seen: [seen],
      now: NOW,
      minFileAge: 30_000,
    });
    expect(p.enqueue.map((f) => f.path)).toEqual(['a.wav']);
    expect(p.seen.has('a.wav')).toBe(true);
  });

  it('waits for minFileAge measured from first sight when the LIST time is not exact', () => {
    const seen = { size: 10, mtime: 'Nov 23 18:42', firstSeen: NOW - 10_000 };
    const p = planPoll({
      files: [list('a.wav', 10)],
      synced: [undefined],
      seen: [seen],
      now: NOW,
      minFileAge: 30_000,
    });
    expect(p.enqueue).toEqual([]);
    expect(p.waiting).toBe(1);
  });

  it('uses the exact MLSD time for minFileAge', () => {
    const file: RemoteFile = {
      path: 'a.wav',
      size: 10,
      mtime: new Date(NOW - 5_000).toISOString(),
      mtimeExact: true,
    };
    const seen = { size: 10, mtime: file.mtime, firstSeen: NOW - 3_600_000 };
    const p = planPoll({ files: [file], synced: [undefined], seen: [seen], now: NOW, minFileAge: 30_000 });
    expect(p.enqueue).toEqual([]);
  });

  it('restarts the clock for a file still growing', () => {
    const seen = { size: 5, mtime: 'Nov 23 18:41', firstSeen: NOW - 3_600_000 };
    const p = planPoll({
      files: [list('a.wav', 10)],
      synced: [undefined],
      seen: [seen],
      now: NOW,
      minFileAge: 0,
    });
    expect(p.enqueue).toEqual([]);
    expect(p.seen.get('a.wav')?.firstSeen).toBe(NOW);
  });

  it('skips synced versions and treats a changed one as new', () => {
    const synced = { size: 10, mtime: 'Nov 23 18:42', key: 'k', syncedAt: 1 };
    const p = planPoll({
      files: [list('a.wav', 10), list('b.wav', 11)],
      synced: [synced, { ...synced, size: 10 }],
      seen: [undefined, undefined],
      now: NOW,
      minFileAge: 0,
    });
    expect(p.unchanged).toBe(1);
    expect(p.seen.has('b.wav')).toBe(true);
  });

  it('forgets versions that are no longer listed', () => {
    const p = planPoll({ files: [], synced: [], seen: [], now: NOW, minFileAge: 0 });
    expect(p.seen.size).toBe(0);
  });
});

describe('sameVersion', () => {
  it('treats the LIST switch from time to year (after six months) as the same version', () => {
    expect(sameVersion({ size: 1, mtime: 'May 23 18:42' }, { size: 1, mtime: 'May 23 2026' })).toBe(true);
    expect(sameVersion({ size: 1, mtime: 'May 23 18:42' }, { size: 1, mtime: 'May 24 2026' })).toBe(false);
    expect(sameVersion({ size: 1, mtime: 'May 23 18:42' }, { size: 1, mtime: 'May 23 18:43' })).toBe(false);
    expect(sameVersion({ size: 1, mtime: 'May 23 18:42' }, { size: 2, mtime: 'May 23 18:42' })).toBe(false);
  });
});
