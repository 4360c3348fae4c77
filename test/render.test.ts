/** Sizes print in one unit style everywhere (CLI and demo): IEC, powers of 1024, as the config writes them. */
import { describe, expect, it } from 'vitest';
import { formatBytes, formatBytesOf } from '../src/cli/render.js';
import { parseSize } from '../src/config.js';

describe('sizes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [254_000, '248.0 KiB'],
    [16 * 1024 ** 2, '16.0 MiB'],
    [1024 ** 2 - 1, '1.0 MiB'],
    [10 * 1024 ** 3, '10.0 GiB'],
    [3 * 1024 ** 4, '3.0 TiB'],
    [-1, '?'],
  ])('formatBytes(%d) is %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it('reads back as the configuration writes sizes', () => {
    for (const n of [1024, 16 * 1024 ** 2, 10 * 1024 ** 3])
      expect(parseSize(formatBytes(n).replace(' ', ''))).toBe(n);
  });

  it('done/total in the unit of the total', () => {
    expect(formatBytesOf(512, 1000)).toBe('512/1000 B');
    expect(formatBytesOf(127_000, 254_000)).toBe('124.0/248.0 KiB');
    expect(formatBytesOf(5 * 1024 ** 2, 10 * 1024 ** 2)).toBe('5.0/10.0 MiB');
  });

  it('no size formatter of another style is left in the source', async () => {
    const { readFile, readdir } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const root = new URL('../src', import.meta.url).pathname;
    const offenders: string[] = [];
    for (const f of await readdir(root, { recursive: true })) {
      if (!f.endsWith('.ts')) continue;
      const text = await readFile(join(root, f), 'utf8');
      if (/['`"] ?kB\b|\bfunction formatBytes\b/.test(text) && f !== join('cli', 'render.ts'))
        offenders.push(f);
    }
    expect(offenders).toEqual([]);
  });
});
