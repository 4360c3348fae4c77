import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ORG_PATTERN } from '../src/config.js';
import { bouncesOf, groupJobId, noSlotDelay, parseJobId, versionJobId } from '../src/queue/jobs.js';

describe('sync job ids', () => {
  it('property: an id built for a version reads back as its org (and batch), whatever the org', () => {
    const org = fc.stringMatching(ORG_PATTERN);
    const version = fc.record({
      path: fc.string({ minLength: 1 }),
      size: fc.nat(),
      mtime: fc.string(),
    });
    fc.assert(
      fc.property(org, version, fc.option(fc.stringMatching(/^[A-Za-z0-9]{1,12}$/)), (o, v, batch) => {
        const id = versionJobId(o, v, batch ?? undefined);
        expect(id).not.toContain(':');
        expect(parseJobId(id)).toEqual(batch ? { org: o, forced: true, batch } : { org: o, forced: false });
      }),
    );
  });

  it('property: a group id reads back as its org and how many files it carries', () => {
    const org = fc.stringMatching(ORG_PATTERN);
    fc.assert(
      fc.property(org, fc.array(fc.string(), { minLength: 1, maxLength: 60 }), (o, members) => {
        const id = groupJobId(o, members);
        expect(id).not.toContain(':');
        expect(parseJobId(id)).toEqual({ org: o, forced: false, files: members.length });
      }),
    );
  });

  it('reads no org out of ids it did not build', () => {
    for (const id of [
      'poll-acme',
      'v-acme',
      'x-acme-0123456789abcdef0123456789abcdef',
      'f-acme-0123456789abcdef0123456789abcdef',
      'g0-acme-0123456789abcdef0123456789abcdef',
      'g-acme-0123456789abcdef0123456789abcdef',
    ]) {
      expect(parseJobId(id), id).toBeUndefined();
    }
  });
});

describe('no-slot delay', () => {
  it('is 50–150 ms for the first four bounces, then doubles up to 250–750 ms', () => {
    const range = (bounces: number) => [noSlotDelay(bounces, () => 0), noSlotDelay(bounces, () => 1)];
    for (const b of [0, 1, 2, 3]) expect(range(b)).toEqual([50, 150]);
    expect(range(4)).toEqual([100, 300]);
    expect(range(5)).toEqual([200, 600]);
    expect(range(6)).toEqual([250, 750]);
    expect(range(1_000)).toEqual([250, 750]);
  });

  it('counts the pickups that ended in neither an outcome nor a failed attempt', () => {
    expect(bouncesOf({ attemptsStarted: 1, attemptsMade: 0 })).toBe(0);
    expect(bouncesOf({ attemptsStarted: 4, attemptsMade: 0 })).toBe(3);
    expect(bouncesOf({ attemptsStarted: 4, attemptsMade: 3 })).toBe(0);
    expect(bouncesOf({ attemptsStarted: 0, attemptsMade: 0 })).toBe(0);
  });
});
