/**
 * One conformance suite for the `SourceSession` port: every source kind (FTP through basic-ftp, SFTP
 * through ssh2) must pass it against a real server. A kind's fixture says how to reach its server and
 * how to cut a transfer; `traits` says what its protocol can express at all.
 */
import { randomBytes } from 'node:crypto';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError, TenantError } from '../../src/errors.js';
import type { SourceEntry, SourceSession } from '../../src/ports/source.js';
import { sha256, writeFileDeep } from '../support/fs.js';

export interface SourceFixture {
  /** Directory the server serves. */
  root: string;
  /** The server path of `rel` (a path relative to `root`). */
  remote(rel: string): string;
  /** The password the fixture logs in with (the suite checks it never shows in an error). */
  password: string;
  /** Logs in, with `password` instead of the right one when given. */
  connect(opts?: { password?: string }): Promise<SourceSession>;
  /** Logs in while expecting another server identity (pinned certificate or host key). */
  connectExpectingOtherIdentity?(): Promise<SourceSession>;
  /**
   * Arranges for the next download of `rel` to be cut after about `bytes` bytes. Returns a hook the
   * suite calls with the count received so far: fixtures that cut from outside the server act on it.
   */
  cutDownload(rel: string, bytes: number): (received: number) => void | Promise<void>;
  stop(): Promise<void>;
}

export interface SourceTraits {
  /** The listing tells symbolic links apart (ftp-srv stats the target instead). */
  reportsLinks: boolean;
  /** Listing times are exact UTC (MLSD, SFTP), not LIST's text. */
  exactTimes: boolean;
  /** The fixture can offer a server whose identity does not match the pinned one. */
  checksIdentity: boolean;
  /**
   * The server says "no such file" in a way the adapter classifies as permanent (FTP: 550; ftp-srv
   * answers `551 ENOENT` to RETR and `451 ENOENT` to LIST instead, which stay retryable).
   */
  missingIsPermanent: boolean;
}

const DIR = 'tree/2024 03';
const MTIME = new Date('2024-03-05T06:07:08Z');
const KiB = 1024;
/** name → size; 64 KiB and 300,001 B cross SFTP's 32 KiB reads on and off a boundary. */
const FILES: Record<string, number> = {
  'appel ü 1.wav': 300_001,
  '通話.mp3': 64 * KiB,
  'empty.csv': 0,
  'one.json': 1,
};
const CUT_FILE = 'big/cut.wav';
const CUT_SIZE = 4 * 1024 * KiB;

/** A destination that takes its time with every chunk (backpressure), counting what arrives. */
function countingSink(onBytes?: (received: number) => void | Promise<void>, delayMs = 0) {
  const chunks: Buffer[] = [];
  let received = 0;
  const sink = new Writable({
    highWaterMark: 16 * KiB,
    write(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      chunks.push(chunk);
      Promise.resolve(onBytes?.(received)).then(
        () => (delayMs ? setTimeout(cb, delayMs) : cb()),
        (err: Error) => cb(err),
      );
    },
  });
  sink.on('error', () => {}); // the download's promise reports failures
  return {
    sink,
    get received() {
      return received;
    },
    body: () => Buffer.concat(chunks),
  };
}

export function describeSourceConformance(
  name: string,
  traits: SourceTraits,
  makeFixture: () => Promise<SourceFixture>,
): void {
  describe(`SourceSession conformance: ${name}`, () => {
    let fx: SourceFixture;
    const hashes = new Map<string, string>();

    beforeAll(async () => {
      fx = await makeFixture();
      for (const [file, size] of Object.entries(FILES)) {
        const w = await writeFileDeep(fx.root, `${DIR}/${file}`, randomBytes(size), { mtime: MTIME });
        hashes.set(file, w.sha256);
      }
      await writeFileDeep(fx.root, `${DIR}/sub dir/deep.wav`, 'deep');
      await symlink('appel ü 1.wav', join(fx.root, DIR, 'link.wav'));
      await writeFileDeep(fx.root, CUT_FILE, CUT_SIZE);
    });

    afterAll(async () => {
      await fx?.stop();
    });

    async function withSession<T>(fn: (s: SourceSession) => Promise<T>): Promise<T> {
      const session = await fx.connect();
      try {
        return await fn(session);
      } finally {
        session.close();
      }
    }

    const byName = (entries: SourceEntry[]) => new Map(entries.map((e) => [e.name, e]));

    it('lists a nested directory with spaces and non-ASCII names: names, types and sizes', async () => {
      await withSession(async (s) => {
        const entries = byName(await s.list(fx.remote(DIR)));
        for (const [file, size] of Object.entries(FILES)) {
          expect(entries.get(file), file).toMatchObject({ type: 'file', size });
        }
        expect(entries.get('sub dir')?.type).toBe('dir');
        expect(entries.has('link.wav')).toBe(true);
        const parent = byName(await s.list(fx.remote('tree')));
        expect(parent.get('2024 03')?.type).toBe('dir');
        expect(byName(await s.list(fx.remote(`${DIR}/sub dir`))).get('deep.wav')).toMatchObject({
          type: 'file',
          size: 4,
        });
      });
    });

    // What the protocol cannot express is not a test of it (not a skip).
    if (traits.reportsLinks)
      it('reports a symbolic link as a link, not as its target', async () => {
        await withSession(async (s) => {
          expect(byName(await s.list(fx.remote(DIR))).get('link.wav')?.type).toBe('link');
        });
      });

    it('gives a file the same mtime on two listings (exact UTC where the protocol has it)', async () => {
      await withSession(async (s) => {
        const first = byName(await s.list(fx.remote(DIR))).get('appel ü 1.wav')!;
        const second = byName(await s.list(fx.remote(DIR))).get('appel ü 1.wav')!;
        expect(first.mtime).not.toBe('');
        expect(second.mtime).toBe(first.mtime);
        expect(second.mtimeExact).toBe(first.mtimeExact);
        if (traits.exactTimes) {
          expect(first).toMatchObject({ mtimeExact: true, mtime: MTIME.toISOString() });
          expect(first.modifiedAt?.getTime()).toBe(MTIME.getTime());
        }
      });
    });

    it('downloads files byte for byte: 0 B, 1 B, 64 KiB and 300,001 B', async () => {
      await withSession(async (s) => {
        for (const [file, size] of Object.entries(FILES)) {
          const out = countingSink();
          await s.download(fx.remote(`${DIR}/${file}`), out.sink);
          expect(out.received, file).toBe(size);
          expect(sha256(out.body()), file).toBe(hashes.get(file));
        }
        expect(s.healthy).toBe(true);
      });
    });

    it('downloads from an offset (resume) exactly the rest of the file, where the source can', async () => {
      await withSession(async (s) => {
        if (!s.downloadFrom) return; // a source that cannot resume: transfers start over
        const file = 'appel ü 1.wav';
        const whole = countingSink();
        await s.download(fx.remote(`${DIR}/${file}`), whole.sink);
        // Offsets on and off SFTP's 32 KiB read boundary, and the last byte alone.
        for (const offset of [1, 64 * KiB, 100_003, 300_000]) {
          const out = countingSink();
          await s.downloadFrom(fx.remote(`${DIR}/${file}`), out.sink, offset);
          expect(out.received, `from ${offset}`).toBe(300_001 - offset);
          expect(out.body().equals(whole.body().subarray(offset)), `from ${offset}`).toBe(true);
        }
        expect(s.healthy).toBe(true);
      });
    });

    it('downloads into a slow destination without losing or reordering bytes', async () => {
      await withSession(async (s) => {
        const out = countingSink(undefined, 1);
        await s.download(fx.remote(`${DIR}/appel ü 1.wav`), out.sink);
        expect(sha256(out.body())).toBe(hashes.get('appel ü 1.wav'));
      });
    });

    it(`fails the download of a missing file${traits.missingIsPermanent ? ' with PermanentError' : ''} and stays usable`, async () => {
      await withSession(async (s) => {
        const out = countingSink();
        const err = await s.download(fx.remote(`${DIR}/missing.wav`), out.sink).then(
          () => undefined,
          (e: Error) => e,
        );
        expect(err).toBeInstanceOf(Error);
        expect(out.received).toBe(0);
        if (traits.missingIsPermanent) expect(err).toBeInstanceOf(PermanentError);
        expect(err).not.toBeInstanceOf(TenantError);
        expect(s.healthy).toBe(true);
        expect((await s.list(fx.remote(DIR))).length).toBeGreaterThan(0);
      });
    });

    it(`fails the listing of a missing directory${traits.missingIsPermanent ? ' with PermanentError' : ''}`, async () => {
      await withSession(async (s) => {
        const err = await s.list(fx.remote('no such dir')).then(
          () => undefined,
          (e: Error) => e,
        );
        expect(err).toBeInstanceOf(Error);
        if (traits.missingIsPermanent) expect(err).toBeInstanceOf(PermanentError);
        expect(err).not.toBeInstanceOf(TenantError);
      });
    });

    it('does not resolve a transfer cut half way as a complete one', async () => {
      const session = await fx.connect();
      try {
        const out = countingSink(fx.cutDownload(CUT_FILE, 512 * KiB), 1);
        const outcome = await session.download(fx.remote(CUT_FILE), out.sink).then(
          () => undefined,
          (err: Error) => err,
        );
        // Either the download fails, or the caller can see that bytes are missing (basic-ftp resolves
        // on a clean close of the data connection): never a success with the listed size.
        expect(outcome !== undefined || out.received !== CUT_SIZE).toBe(true);
        expect(out.received).toBeLessThan(CUT_SIZE);
        // A cut is worth a retry.
        if (outcome) expect(outcome).not.toBeInstanceOf(PermanentError);
      } finally {
        session.close();
      }
    });

    it('refuses a wrong password with TenantError, without the password in the message', async () => {
      const wrong = `wrong-${randomBytes(6).toString('hex')}`;
      const err = await fx.connect({ password: wrong }).catch((e) => e);
      expect(err).toBeInstanceOf(TenantError);
      expect(String(err.message)).not.toContain(wrong);
      expect(String(err.message)).not.toContain(fx.password);
    });

    // What the protocol cannot express is not a test of it (not a skip).
    if (traits.checksIdentity)
      it('refuses a server whose identity does not match the pinned one with TenantError', async () => {
        const err = await fx.connectExpectingOtherIdentity!().catch((e) => e);
        expect(err).toBeInstanceOf(TenantError);
        expect(String(err.message)).not.toContain(fx.password);
      });

    it('is not healthy after close()', async () => {
      const s = await fx.connect();
      expect(s.healthy).toBe(true);
      s.close();
      expect(s.healthy).toBe(false);
    });
  });
}
