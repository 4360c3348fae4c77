import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ORG_PATTERN } from '../src/config.js';
import { parseJobId, versionJobId } from '../src/queue/jobs.js';

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

  it('reads no org out of ids it did not build', () => {
    for (const id of [
      'poll-acme',
      'v-acme',
      'x-acme-0123456789abcdef0123456789abcdef',
      'f-acme-0123456789abcdef0123456789abcdef',
    ]) {
      expect(parseJobId(id), id).toBeUndefined();
    }
  });
});
