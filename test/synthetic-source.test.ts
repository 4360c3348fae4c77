/**
 * The generated part of the synthetic source (test/support/fakes/synthetic-source.ts): what the
 * conformance suite cannot see, since it writes its own files (those go to the overlay).
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../src/errors.js';
import { walk } from '../src/sync/walk.js';
import { makeSyntheticSource } from './support/fakes/synthetic-source.js';

function sink() {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  return { w, body: () => Buffer.concat(chunks) };
}

describe('synthetic source: the generated tree', () => {
  it('a walk finds every generated file with the size and time the source says, nothing else', async () => {
    const src = makeSyntheticSource({ files: 2_345, perDir: 500 });
    const s = await src.connect();
    const { files } = await walk(s, { dirs: ['/'], include: ['**/*'], exclude: [] });
    expect(files.length).toBe(2_345);
    const byPath = new Map(files.map((f) => [f.path, f]));
    for (const i of [0, 499, 500, 2_344]) {
      const v = src.version(i);
      expect(byPath.get(v.path)).toMatchObject({ size: v.size, mtime: v.mtime, mtimeExact: true });
    }
    s.close();
  });

  it('downloads the same bytes every time, as many as listed; a new version has other bytes', async () => {
    const src = makeSyntheticSource({ files: 10, perDir: 4 });
    const s = await src.connect();
    const get = async (i: number) => {
      const out = sink();
      await s.download(`/${src.version(i).path}`, out.w);
      return out.body();
    };
    const a = await get(7);
    expect(a.length).toBe(src.version(7).size);
    expect((await get(7)).equals(a)).toBe(true);
    expect(a.equals(src.bytes(7))).toBe(true);
    const before = src.version(7);
    src.touch(7);
    expect(src.version(7)).not.toEqual(before);
    const b = await get(7);
    expect(b.length).toBe(src.version(7).size);
    expect(createHash('sha256').update(b).digest('hex')).not.toBe(
      createHash('sha256').update(a).digest('hex'),
    );
    s.close();
  });

  it('a file or directory past the end is missing (NotFoundError); grow adds files; a closed session refuses', async () => {
    const src = makeSyntheticSource({ files: 10, perDir: 4 });
    const s = await src.connect();
    await expect(s.download('/synthetic/d2/call-10.wav', sink().w)).rejects.toBeInstanceOf(NotFoundError);
    await expect(s.download('/synthetic/d0/call-5.wav', sink().w)).rejects.toBeInstanceOf(NotFoundError);
    await expect(s.list('/synthetic/d3')).rejects.toBeInstanceOf(NotFoundError);
    src.grow(3);
    expect((await s.list('/synthetic/d3')).map((e) => e.name)).toEqual(['call-12.wav']);
    await expect(src.connect({ password: 'wrong' })).rejects.toThrow(/530/);
    s.close();
    expect(s.healthy).toBe(false);
    await expect(s.list('/synthetic')).rejects.toThrow(/closed/);
  });
});
