/**
 * The interop matrix for one server kind: for each TLS mode it supports, the real daemon lists the
 * server recursively, syncs every file once (hashes compared), and then sees changed, new and
 * growing files as a deployment would. Each `<server>.test.ts` file runs it for its server, so the
 * three servers run in parallel test processes.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectFtp } from '../../src/adapters/ftp.js';
import { makeRedisAfterSyncStore } from '../../src/adapters/redis-after-sync.js';
import { TenantError } from '../../src/errors.js';
import { walk } from '../../src/sync/walk.js';
import { sha256, type TempDir, tempDir, writeFileDeep } from '../support/fs.js';
import { type ServerEnv, startServerEnv } from '../support/servers/daemon-env.js';
import {
  type FtpServerUnderTest,
  type ServerKind,
  startServer,
  type TlsMode,
  TRAITS,
  tenantFtp,
} from '../support/servers/index.js';
import { makeTestPki, type TestPki } from '../support/tls.js';

const HOUR = 3_600_000;

/** Nested folders, a zero-byte file, spaces, non-ASCII names, one file past a few MB. */
export function matrixTree(): { path: string; size: number }[] {
  const files = [
    { path: 'top.mp3', size: 1_000 },
    { path: 'calls/big.wav', size: 3 * 1024 * 1024 + 17 },
    { path: 'calls/2024/01/agent one/call 1.wav', size: 50_000 },
    { path: 'calls/2024/01/agent one/empty.wav', size: 0 },
    { path: 'calls/équipe/appel ü.mp3', size: 20_000 },
    { path: 'calls/日本/通話.wav', size: 10_000 },
  ];
  for (let i = 0; i < 10; i++) files.push({ path: `calls/day-${i % 3}/rec-${i}.wav`, size: 2_000 + i * 997 });
  return files;
}

/** Listed but not synced: not call data, and a dot file (include globs skip those). */
const IGNORED = ['calls/notes.txt', 'calls/.partial.wav'];

/** `Nov 23 18:42` (recent) — unix LIST as these servers send it, whitespace normalised. */
const LIST_TIME = /^[A-Z][a-z]{2} \d{1,2} \d{2}:\d{2}$/;

export function defineMatrix(kind: ServerKind): void {
  const modes: TlsMode[] = ['plain', 'explicit', ...(TRAITS[kind].implicit ? (['implicit'] as const) : [])];
  let pki: TestPki;
  beforeAll(async () => {
    pki = await makeTestPki();
  });
  afterAll(async () => {
    await pki?.cleanup();
  });

  describe.each(modes)(`${kind} over %s`, (mode) => {
    let dir: TempDir;
    let server: FtpServerUnderTest;
    let env: ServerEnv;
    const expected = new Map<string, string>();
    const org = 'acme';

    beforeAll(async () => {
      dir = await tempDir(`interop-${kind}-${mode}`);
      const old = new Date(Date.now() - HOUR);
      for (const f of matrixTree()) {
        expected.set(f.path, (await writeFileDeep(dir.path, f.path, f.size, { mtime: old })).sha256);
      }
      for (const p of IGNORED) await writeFileDeep(dir.path, p, 'x', { mtime: old });
      server = await startServer(kind, { root: dir.path, mode, pki, debRoot: inject('interopDebRoot') });
      env = await startServerEnv(`${kind}-${mode}`, [{ org, ftp: tenantFtp(server) }]);
    });
    afterAll(async () => {
      await env?.stop();
      await server?.stop();
      await dir?.cleanup();
    });

    it(`logs in with a password and lists recursively with ${TRAITS[kind].mlsd ? 'MLSD (exact UTC times)' : 'LIST (raw times)'}`, async () => {
      const tenant = env.config.tenants[0]!;
      const session = await connectFtp(tenant, { user: server.user, password: server.password });
      try {
        if (mode === 'plain') expect(session.tls).toBeUndefined();
        else expect(session.tls).toMatchObject({ authorized: true });
        const { files } = await walk(session, { dirs: ['/'], include: tenant.include, exclude: [] });
        expect(files.map((f) => f.path).sort()).toEqual([...expected.keys()].sort());
        for (const f of files) {
          expect(f.mtimeExact, f.path).toBe(TRAITS[kind].mlsd);
          if (f.mtimeExact) {
            const { mtime } = await stat(join(dir.path, f.path));
            expect(f.mtime, f.path).toBe(new Date(Math.floor(mtime.getTime() / 1000) * 1000).toISOString());
          } else {
            expect(f.mtime, f.path).toMatch(LIST_TIME);
          }
        }
      } finally {
        session.close();
      }
    });

    it('syncs every file once, with the same bytes, and records sync state', async () => {
      // The scheduler's first poll (startServerEnv waits for it) saw every file once: this one enqueues.
      expect(await env.poll(org)).toMatchObject({ enqueued: expected.size });
      expect((await env.idle()).failed).toBe(0);
      expect(await env.objects(org)).toEqual(expected);
      expect(env.puts()).toBe(expected.size);
      const synced = await env.state.allSynced(org);
      expect([...synced.keys()].sort()).toEqual([...expected.keys()].sort());
    });

    it('adds nothing when nothing changed, and syncs a changed and a new file again', async () => {
      expect(await env.poll(org)).toMatchObject({ enqueued: 0, unchanged: expected.size });
      const before = env.puts();
      // A new size; the same size with a newer time (a different minute, so LIST shows it too); a new file.
      const grown = await writeFileDeep(dir.path, 'top.mp3', 1_500, {
        mtime: new Date(Date.now() - HOUR / 2),
      });
      const same = join(dir.path, 'calls/日本/通話.wav');
      const sameContent = Buffer.alloc(10_000, 7);
      await writeFile(same, sameContent);
      await utimes(same, new Date(Date.now() - HOUR / 2), new Date(Date.now() - HOUR / 2));
      const added = await writeFileDeep(dir.path, 'calls/2024/01/agent one/call 2.wav', 4_321);
      expected.set('top.mp3', grown.sha256);
      expected.set('calls/日本/通話.wav', sha256(sameContent));
      expected.set('calls/2024/01/agent one/call 2.wav', added.sha256);

      expect(await env.poll(org)).toMatchObject({ enqueued: 0, waiting: 3 });
      expect(await env.poll(org)).toMatchObject({ enqueued: 3 });
      expect((await env.idle()).failed).toBe(0);
      expect(await env.objects(org)).toEqual(expected);
      expect(env.puts() - before).toBe(3);
    });

    it('does not upload a file that is still growing until it is stable', async () => {
      const path = 'calls/growing.wav';
      await writeFileDeep(dir.path, path, 10_000);
      await env.poll(org);
      const full = await writeFileDeep(dir.path, path, 20_000);
      expect(await env.poll(org)).toMatchObject({ enqueued: 0 });
      expect(await env.poll(org)).toMatchObject({ enqueued: 1 });
      expect((await env.idle()).failed).toBe(0);
      expect((await env.objects(org)).get(path)).toBe(full.sha256);
    });

    /** The error of a login with the tenant's `ftp.secure` replaced. */
    const loginError = async (secure: false | 'explicit' | 'implicit') => {
      const tenant = env.config.tenants[0]!;
      const other = { ...tenant, ftp: { ...tenant.ftp!, secure } };
      return connectFtp(other, { user: server.user, password: server.password }).then(
        (s) => {
          s.close();
          return undefined;
        },
        (e: unknown) => e as Error,
      );
    };

    if (mode === 'explicit') {
      it('gives a tenant without TLS a tenant error that says the server wants TLS', async () => {
        const err = await loginError(false);
        expect(err).toBeInstanceOf(TenantError);
        expect(err?.message).toMatch(/refused the session over TLS: ".*(TLS|SSL|encryption|cleartext)/);
      });
    }
    if (mode === 'plain') {
      it('gives a tenant asking for FTPS of a server without it a tenant error', async () => {
        const explicit = await loginError('explicit');
        expect(explicit).toBeInstanceOf(TenantError);
        expect(explicit?.message).toMatch(/refused AUTH TLS/);
        const implicit = await loginError('implicit');
        expect(implicit).toBeInstanceOf(TenantError);
        expect(implicit?.message).toMatch(/answers in plain text \("220[ -]/);
      });
    }
  });

  // After-sync actions against the real server (plain FTP: the commands are the same over TLS).
  describe(`${kind} after-sync (delete, move into new nested directories)`, () => {
    let dir: TempDir;
    let server: FtpServerUnderTest;
    let env: ServerEnv;
    const del = new Map<string, string>();
    const mv = new Map<string, string>();

    beforeAll(async () => {
      dir = await tempDir(`interop-${kind}-after`);
      const old = new Date(Date.now() - HOUR);
      for (const path of ['del/a.wav', 'del/2024/agent one/b.wav']) {
        del.set(path, (await writeFileDeep(dir.path, path, 5_000 + path.length, { mtime: old })).sha256);
      }
      for (const path of ['mv/a.wav', 'mv/x/é ü.mp3']) {
        mv.set(path, (await writeFileDeep(dir.path, path, 6_000 + path.length, { mtime: old })).sha256);
      }
      server = await startServer(kind, {
        root: dir.path,
        mode: 'plain',
        writable: true,
        debRoot: inject('interopDebRoot'),
      });
      // The servers log in as an unprivileged user: it may delete, rename and create here.
      await new Promise<void>((resolve, reject) =>
        execFile('chmod', ['-R', 'a+rwX', dir.path], (err) => (err ? reject(err) : resolve())),
      );
      env = await startServerEnv(`${kind}-after`, [
        { org: 'del', ftp: tenantFtp(server), dirs: ['/del'], extra: { afterSync: 'delete' } },
        {
          org: 'mv',
          ftp: tenantFtp(server),
          dirs: ['/mv'],
          extra: { afterSync: 'move', moveTo: '/archive/{date}/{path}' },
        },
      ]);
    });
    afterAll(async () => {
      await env?.stop();
      await server?.stop();
      await dir?.cleanup();
    });

    const filesBelow = async (d: string) =>
      (await readdir(join(dir.path, d), { recursive: true, withFileTypes: true }).catch(() => []))
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name).slice(join(dir.path, d).length + 1))
        .sort();

    it('deletes, and moves below directories it creates; every object intact and written once', async () => {
      expect(await env.poll('del')).toMatchObject({ enqueued: del.size });
      expect(await env.poll('mv')).toMatchObject({ enqueued: mv.size });
      expect((await env.idle()).failed).toBe(0);
      expect(await env.objects('del')).toEqual(del);
      expect(await env.objects('mv')).toEqual(mv);
      expect(env.puts()).toBe(del.size + mv.size);
      expect(await filesBelow('del')).toEqual([]);
      expect(await filesBelow('mv')).toEqual([]);
      const day = new Date().toISOString().slice(0, 10);
      expect(await filesBelow(`archive/${day}`)).toEqual([...mv.keys()].sort());
      for (const [path, hash] of mv) {
        expect(sha256(await readFile(join(dir.path, 'archive', day, path))), path).toBe(hash);
      }
      const store = makeRedisAfterSyncStore(env.redis, env.prefix);
      expect([...(await store.all('del')), ...(await store.all('mv'))]).toEqual([]);
      expect(await env.poll('del')).toMatchObject({ enqueued: 0, matched: 0 });
    });
  });
}
