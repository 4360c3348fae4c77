import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { PermanentError } from '../src/errors.js';
import { uploadRequestSchema } from '../src/http/api-schemas.js';
import { DEFAULT_BATCH_LIMITS, planEntries } from '../src/sync/batch/entries.js';
import { objectKey, safeRelativePath, tenantPrefix } from '../src/sync/key.js';

const T = '{org}/{path}';

describe('object keys (invariant 4: a key never leaves its tenant prefix)', () => {
  it('renders the default template with the path as the server spelled it', () => {
    expect(objectKey(T, 'acme', 'calls/2024/a b é.wav')).toBe('acme/calls/2024/a b é.wav');
    expect(objectKey('raw/{org}/in/{path}', 'acme', '/x.wav')).toBe('raw/acme/in/x.wav');
  });

  it('collapses empty segments and leading slashes', () => {
    expect(safeRelativePath('//calls///x.wav')).toBe('calls/x.wav');
  });

  it('keeps names that differ only in Unicode normalisation apart', () => {
    const nfc = 'caf\u00e9.wav';
    const nfd = 'cafe\u0301.wav';
    expect(objectKey(T, 'acme', nfc)).not.toBe(objectKey(T, 'acme', nfd));
  });

  it.each([
    ['..', 'a ".." segment'],
    ['calls/../../other/x.wav', 'a ".." segment'],
    ['./x.wav', 'a "." segment'],
    ['a\u0000b.wav', 'control'],
    ['a\nb.wav', 'control'],
    ['a\u202eb.wav', 'bidi'],
    ['\uff0e\uff0e/x.wav', 'segment'], // fullwidth dots fold to ".." under NFKC
    ['..\\x.wav', 'segment'],
    ['', 'empty'],
    ['/', 'empty'],
  ])('refuses %j', (path, why) => {
    expect(() => objectKey(T, 'acme', path)).toThrow(PermanentError);
    expect(() => objectKey(T, 'acme', path)).toThrow(why);
  });

  it('encodes a backslash so no consumer can read it as a separator', () => {
    expect(objectKey(T, 'acme', 'a\\b.wav')).toBe('acme/a%5Cb.wav');
  });

  it('refuses keys longer than 1024 bytes', () => {
    expect(() => objectKey(T, 'acme', `${'x'.repeat(1100)}.wav`)).toThrow('longer than 1024');
  });

  it('property: any path either is refused or yields a key inside the prefix with no dot segments', () => {
    const hostile = fc.constantFrom(
      '..',
      '.',
      '/',
      '\\',
      '%2e%2e',
      '\u0000',
      '\u001f',
      '\u2024\u2024',
      '\uff0e',
      '\u202e',
      'e\u0301',
      '\u00e9',
      'a',
      '\ufe52',
      '..\\',
    );
    const segment = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 12 }), hostile);
    const path = fc
      .array(fc.oneof(segment, fc.string({ maxLength: 300 })), { maxLength: 8 })
      .map((s) => s.join('/'));
    fc.assert(
      fc.property(path, fc.constantFrom('acme', 'b-2', 'x_y'), (p, org) => {
        let key: string;
        try {
          key = objectKey(T, org, p);
        } catch (err) {
          expect(err).toBeInstanceOf(PermanentError);
          return;
        }
        const prefix = tenantPrefix(T, org);
        expect(key.startsWith(prefix)).toBe(true);
        const rest = key.slice(prefix.length);
        for (const seg of rest.split('/')) {
          expect(seg).not.toBe('');
          expect(seg.includes('\\')).toBe(false);
          // Even a consumer that folds look-alikes (NFKC) and splits on both slashes sees no dot segment.
          for (const part of seg.normalize('NFKC').split(/[\\/]/)) expect(['.', '..']).not.toContain(part);
        }
        // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
        expect(/[\u0000-\u001f\u007f]/.test(key)).toBe(false);
        expect(Buffer.byteLength(key)).toBeLessThanOrEqual(1024);
      }),
      { numRuns: 3000 },
    );
  });

  it('property: a zip entry name either is rejected or yields a key inside its archive’s folder of the tenant', () => {
    const hostile = fc.constantFrom(
      '..',
      '.',
      '',
      '\\',
      'C:',
      'c:',
      '/',
      '\u0000',
      '\u202e',
      '\uff0e\uff0e',
      '\u2025',
      'a',
      'é',
    );
    const segment = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 10 }), hostile);
    const name = fc
      .array(segment, { minLength: 1, maxLength: 6 })
      .map((s) => `${s.join('/')}`)
      .chain((n) => fc.constantFrom(`${n}.wav`, `${n}.csv`, n));
    fc.assert(
      fc.property(name, (n) => {
        const [d] = planEntries(
          [
            {
              index: 0,
              name: n,
              compressedSize: 10,
              uncompressedSize: 10,
              compressionMethod: 0,
              encrypted: false,
              symlink: false,
              localHeaderOffset: 0,
              nameLength: Buffer.byteLength(n),
            },
          ],
          DEFAULT_BATCH_LIMITS,
        ).decisions;
        if (d?.action !== 'expand') return;
        // Accepted by the plan: never absolute, no drive letter, no backslash, no dot segment …
        expect(n.startsWith('/') || /^[A-Za-z]:/.test(n) || n.includes('\\')).toBe(false);
        // … and its key (or the key check's refusal) stays in the archive's folder of the tenant.
        let key: string;
        try {
          key = objectKey(T, 'acme', `drop/x.zip/${n}`);
        } catch (err) {
          expect(err).toBeInstanceOf(PermanentError);
          return;
        }
        expect(key.startsWith('acme/drop/x.zip/')).toBe(true);
        for (const seg of key.split('/')) {
          for (const part of seg.normalize('NFKC').split(/[\\/]/))
            expect(['.', '..', '']).not.toContain(part);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("property: with any accepted template, no key of one tenant lies under another tenant's prefix", () => {
    const accepted = (keyTemplate: string) => {
      try {
        return parseConfig({ s3: { bucket: 'b', keyTemplate }, vela: { enabled: false } }, {}).s3.keyTemplate;
      } catch {
        return undefined;
      }
    };
    // Templates that join the org to its neighbours are refused, so two tenants' prefixes never meet.
    expect(accepted('{org}-{path}')).toBeUndefined();
    expect(accepted('{org}{path}')).toBeUndefined();
    expect(accepted('{org}/{path}/{path}')).toBeUndefined();
    const templates = ['{org}/{path}', 'calls/{org}/{path}', 'x{org}/rec/{path}', '{org}/{org}-{path}'];
    for (const t of templates) expect(accepted(t)).toBe(t);
    const org = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,8}$/);
    fc.assert(
      fc.property(fc.constantFrom(...templates), org, org, fc.string({ maxLength: 40 }), (t, a, b, p) => {
        fc.pre(a !== b);
        let key: string;
        try {
          key = objectKey(t, a, p);
        } catch {
          return;
        }
        expect(key.startsWith(tenantPrefix(t, b))).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('upload API keys (invariant 4 for presigned POSTs)', () => {
  it("property: a filename the API accepts yields a key in the org's api/<id>/ folder, ending with that one name", () => {
    const filename = uploadRequestSchema.shape.filename;
    const hostile = fc.constantFrom(
      '..',
      '.',
      '%2e%2e',
      '\uff0e\uff0e',
      '\u202e',
      'a/b',
      'a\\b',
      '\u0000',
      'e\u0301',
      ' ',
    );
    const name = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 30 }),
      hostile,
      fc.array(hostile).map((a) => a.join('')),
    );
    fc.assert(
      fc.property(
        name,
        fc.uuid(),
        fc.constantFrom('{org}/{path}', 'calls/{org}/{path}'),
        fc.constantFrom('acme', 'b-2'),
        (n, id, template, org) => {
          if (!filename.safeParse(n).success) return; // the API answers 400 naming filename
          let key: string;
          try {
            key = objectKey(template, org, `api/${id}/${n}`);
          } catch (err) {
            expect(err).toBeInstanceOf(PermanentError); // also a 400 naming filename
            return;
          }
          const folder = `${tenantPrefix(template, org)}api/${id}/`;
          expect(key.startsWith(folder)).toBe(true);
          const last = key.slice(folder.length);
          expect(last).not.toContain('/');
          expect(['', '.', '..']).not.toContain(last.normalize('NFKC'));
        },
      ),
      { numRuns: 3000 },
    );
  });
});
