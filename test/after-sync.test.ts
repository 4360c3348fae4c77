/**
 * After-sync actions (`afterSync: delete | move`, src/sync/after-sync.ts) end to end through the
 * daemon: against the in-process FTP server (ftp-srv, with injected faults) and OpenSSH's sshd.
 * Each case checks the source tree on disk, the objects in S3 (bytes and number of writes), the
 * pending entries in Redis, and what `status` and the metrics say.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRedisAfterSyncStore } from '../src/adapters/redis-after-sync.js';
import { makeStyle } from '../src/cli/render.js';
import { renderStatus } from '../src/cli/status.js';
import { openOps } from '../src/ops/context.js';
import { getStatus } from '../src/ops/status.js';
import { makeTestEnv, SECRETS, type TestEnv, waitIdle } from './support/daemon.js';
import { sha256, writeFileDeep } from './support/fs.js';
import { type FtpTestServer, startFtpServer } from './support/ftp-server.js';
import { describeNeeding, missing } from './support/needs.js';
import { getObjectBuffer, listAll } from './support/s3.js';
import { type FtpServerUnderTest, startServer, tenantFtp } from './support/servers/index.js';
import { type SshdServer, startSshd } from './support/sshd.js';
import { makeTestPki } from './support/tls.js';

let env: TestEnv | undefined;
let sshd: SshdServer | undefined;
let vsftpd: FtpServerUnderTest | undefined;
afterEach(async () => {
  await env?.stop();
  await Promise.allSettled([sshd?.stop(), vsftpd?.stop()]);
  env = undefined;
  sshd = undefined;
  vsftpd = undefined;
});

const CSV = 'file,email,date_of_call\r\ncalls/a.wav,jane@acme.example,2024-03-05\r\n';

/** Whole-object writes (PutObject) per key, as the S3 proxy saw them. */
function writes(e: TestEnv): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of e.s3.requests()) {
    if (r.method !== 'PUT' || r.status >= 300 || /[?&](partNumber|uploadId)=/.test(r.path)) continue;
    const key = decodeURIComponent(r.path.split('?')[0]!.slice(e.s3.bucket.length + 2));
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

/** sha256 of each object under `acme/`, keyed by the path after it. */
async function objects(e: TestEnv): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const o of await listAll(e.s3.client, e.s3.bucket, 'acme/')) {
    out.set(o.key.slice(5), sha256(await getObjectBuffer(e.s3.client, e.s3.bucket, o.key)));
  }
  return out;
}

/** Files (not directories) below `dir`, relative, sorted. */
async function filesBelow(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

const pending = (e: TestEnv) => makeRedisAfterSyncStore(e.redis, e.prefix).all('acme');

describe('afterSync on FTP (ftp-srv)', () => {
  it('delete: every synced file (recordings and an indexed call record) is deleted; objects intact, one write each', async () => {
    env = await makeTestEnv('after-delete', { tenant: { afterSync: 'delete' } });
    const hashes = new Map<string, string>();
    for (const [path, content] of [
      ['calls/a.wav', 30_000],
      ['calls/2024/03/b c.mp3', 12_345],
      ['calls/empty.wav', ''],
      ['records/calls.csv', CSV],
    ] as const) {
      hashes.set(path, (await writeFileDeep(env.root, path, content)).sha256);
    }
    await writeFileDeep(env.root, 'calls/notes.txt', 'not call data');
    const daemon = await env.start();
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 4 });
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);

    expect(await objects(env)).toEqual(hashes);
    for (const path of hashes.keys()) expect(writes(env).get(`acme/${path}`), path).toBe(1);
    // Only what was synced is gone; the file the filters skip stays.
    expect(await filesBelow(env.root)).toEqual(['calls/notes.txt']);
    expect(await pending(env)).toEqual([]);
    // The call record was indexed before it was deleted.
    expect(await env.state.findManifestRow('acme', ['calls/a.wav', 'a.wav'])).toBeDefined();
    expect(await daemon.metrics.render()).toMatch(
      /ftpsync_after_sync_actions_total\{org="acme",action="delete",outcome="done"\} 4/,
    );
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 0, matched: 0 });
  });

  it('move: files go below a nested moveTo that did not exist yet; objects intact', async () => {
    env = await makeTestEnv('after-move', {
      tenant: { dirs: ['/calls'], afterSync: 'move', moveTo: '/archive/{date}/{path}' },
    });
    const hashes = new Map<string, string>();
    for (const path of ['calls/a.wav', 'calls/agent one/2024/b.wav', 'calls/équipe/ü.mp3']) {
      hashes.set(path, (await writeFileDeep(env.root, path, 7_000 + path.length)).sha256);
    }
    const daemon = await env.start();
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 3 });
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);

    expect(await objects(env)).toEqual(hashes);
    const day = new Date().toISOString().slice(0, 10);
    expect(await filesBelow(join(env.root, 'calls'))).toEqual([]);
    const archive = join(env.root, 'archive', day);
    expect(await filesBelow(archive)).toEqual([...hashes.keys()].sort());
    for (const [path, hash] of hashes) {
      expect(sha256(await readFile(join(archive, path))), path).toBe(hash);
    }
    expect(await pending(env)).toEqual([]);
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 0, matched: 0 });
  });

  it('a file rewritten between its upload and the action is kept; its new version is synced (and then deleted)', async () => {
    env = await makeTestEnv('after-changed', { tenant: { afterSync: 'delete' } });
    const path = 'calls/a.wav';
    const first = await writeFileDeep(env.root, path, 20_000);
    const rewritten = Buffer.alloc(25_000, 9);
    // The upload's RETR is followed by the action's fresh listing: the file changes just before it.
    let retrieved = false;
    let rewrote = false;
    env.ftp.faults.onCommand = (directive, arg) => {
      if (directive === 'RETR' && arg?.endsWith('a.wav')) retrieved = true;
      else if (retrieved && !rewrote && /^(LIST|MLSD)$/.test(directive)) {
        rewrote = true;
        writeFileSync(join(env!.root, path), rewritten);
      }
    };
    const daemon = await env.start();
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 1 });
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    expect(rewrote).toBe(true);
    // Not deleted: the server holds a new version. S3 holds the one that was synced.
    expect(await readFile(join(env.root, path))).toEqual(rewritten);
    expect((await objects(env)).get(path)).toBe(first.sha256);
    expect(await pending(env)).toEqual([]);
    expect(await daemon.metrics.render()).toMatch(/action="delete",outcome="changed"\} 1/);

    env.ftp.faults.onCommand = undefined;
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 1 });
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    expect((await objects(env)).get(path)).toBe(sha256(rewritten));
    expect(writes(env).get(`acme/${path}`)).toBe(2);
    expect(existsSync(join(env.root, path))).toBe(false);
  });

  it('a server refusing DELE (550): pending and shown in status, retried with backoff, no second upload; deleted once the server accepts', async () => {
    env = await makeTestEnv('after-refused', { tenant: { afterSync: 'delete' } });
    const path = 'calls/a.wav';
    const file = await writeFileDeep(env.root, path, 40_000);
    let deles = 0;
    env.ftp.faults.refuseCommand = { directive: 'DELE', code: 550, message: 'Permission denied' };
    env.ftp.faults.onCommand = (directive) => {
      if (directive === 'DELE') deles++;
    };
    const base = 2_500;
    const daemon = await env.start({ afterSyncBackoffMs: base });
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 1 });
    const counts = await waitIdle(daemon.syncQueue);
    expect(counts).toMatchObject({ failed: 0 });
    expect(await env.state.getSynced('acme', path)).toMatchObject({ size: 40_000 });
    expect(deles).toBe(1);
    let [entry] = await pending(env);
    expect(entry).toMatchObject({ path, action: 'delete', size: 40_000, attempts: 1 });
    expect(entry!.lastError).toMatch(/550|Permission denied/);
    expect(entry!.next - entry!.lastErrorAt!).toBe(base);

    // Within the backoff a poll does not try again (the poll right after the failure).
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ kind: 'done', unchanged: 1, enqueued: 0 });
    expect(deles).toBe(1);
    // status (and --json) shows it: count and the last error.
    const ops = openOps(env.config, env.logs.log);
    try {
      const status = await getStatus(ops);
      expect(status.tenants[0]!.afterSync).toMatchObject({
        action: 'delete',
        pending: 1,
        failing: 1,
        lastError: { path, attempts: 1 },
      });
      expect(status.tenants[0]!.afterSync.lastError!.message).toMatch(/Permission denied/);
      const text = renderStatus(status, makeStyle(false), Date.now()).join('\n');
      expect(text).toContain('after-sync (delete): 1 pending, 1 failing');
      expect(text).toMatch(/calls\/a\.wav: .*Permission denied.*1 attempt/);
    } finally {
      await ops.close();
    }

    // After the backoff the next poll tries again, and the backoff doubles.
    await delay(Math.max(0, entry!.next - Date.now()) + 100);
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ unchanged: 1, enqueued: 0 });
    expect(deles).toBe(2);
    [entry] = await pending(env);
    expect(entry).toMatchObject({ attempts: 2 });
    expect(entry!.next - entry!.lastErrorAt!).toBe(2 * base);

    // The server accepts again: the next due pass deletes it; nothing was uploaded twice.
    env.ftp.faults.refuseCommand = undefined;
    await delay(Math.max(0, entry!.next - Date.now()) + 100);
    await daemon.poller!.pollNow('acme');
    expect(existsSync(join(env.root, path))).toBe(false);
    expect(deles).toBe(3);
    expect(await pending(env)).toEqual([]);
    expect(writes(env).get(`acme/${path}`)).toBe(1);
    expect((await objects(env)).get(path)).toBe(file.sha256);
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    const metrics = await daemon.metrics.render();
    expect(metrics).toMatch(/action="delete",outcome="failed"\} 2/);
    expect(metrics).toMatch(/action="delete",outcome="done"\} 1/);
  });
});

describe('afterSync on FTPS (explicit TLS, certificate verified through caFile)', () => {
  let tls: FtpTestServer | undefined;
  afterEach(async () => {
    await tls?.stop();
    tls = undefined;
  });

  it('delete and move: files deleted / moved below new nested directories over TLS, objects intact', async () => {
    const pki = await makeTestPki();
    for (const [action, extra] of [
      ['delete', {}],
      ['move', { moveTo: '/done/{date}/{path}' }],
    ] as const) {
      env = await makeTestEnv(`after-ftps-${action}`, {
        tenant: { dirs: ['/calls'], afterSync: action, ...extra },
      });
      tls = await startFtpServer({ root: env.root, users: { acme: SECRETS.ftpPassword }, tls: pki.server });
      const hashes = new Map<string, string>();
      for (const path of ['calls/a.wav', 'calls/x/y/b.wav']) {
        hashes.set(path, (await writeFileDeep(env.root, path, 8_000 + path.length)).sha256);
      }
      const [tenant] = env.config.tenants;
      const config = {
        ...env.config,
        tenants: [
          {
            ...tenant!,
            ftp: { ...tenant!.ftp!, port: tls.port, secure: 'explicit' as const, caFile: pki.caFile },
          },
        ],
      };
      const daemon = await env.start({ config });
      await daemon.poller!.pollNow('acme');
      expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 2 });
      expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
      expect(await objects(env)).toEqual(hashes);
      expect(await filesBelow(join(env.root, 'calls')), action).toEqual([]);
      if (action === 'move') {
        const done = join(env.root, 'done', new Date().toISOString().slice(0, 10));
        expect(await filesBelow(done)).toEqual([...hashes.keys()].sort());
      }
      expect(await pending(env)).toEqual([]);
      for (const [path] of hashes) expect(writes(env).get(`acme/${path}`)).toBe(1);
      await tls.stop();
      tls = undefined;
      await env.stop();
      env = undefined;
    }
  });
});

describeNeeding(missing.sshd(), 'afterSync on SFTP (OpenSSH)', () => {
  it('delete and move: deleted / moved below new nested directories, objects intact', async () => {
    sshd = await startSshd();
    const root = sshd.root;
    const hashes = new Map<string, string>();
    for (const path of ['calls/a.wav', 'calls/x/b.wav']) {
      hashes.set(path, (await writeFileDeep(root, path, 9_000 + path.length)).sha256);
    }
    await sshd.giveToUser(root);
    const sftp = {
      host: '127.0.0.1',
      port: sshd.port,
      user: sshd.user,
      password: sshd.password,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
    };
    // Without a chroot the SFTP paths are the real ones: the target is computed here, never stored.
    env = await makeTestEnv('after-sftp', {
      tenant: {
        ftp: undefined,
        sftp,
        dirs: [`${root}/calls`],
        afterSync: 'move',
        moveTo: `${root}/done/{date}/{name}`,
      },
    });
    const daemon = await env.start();
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 2 });
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    const day = new Date().toISOString().slice(0, 10);
    expect(await filesBelow(join(root, 'calls'))).toEqual([]);
    expect(await filesBelow(join(root, 'done', day))).toEqual(['a.wav', 'b.wav']);
    expect(sha256(await readFile(join(root, 'done', day, 'b.wav')))).toBe(hashes.get('calls/x/b.wav'));
    const inS3 = await objects(env);
    for (const [path, hash] of hashes) expect(inS3.get(`${root.slice(1)}/${path}`), path).toBe(hash);
    expect(await pending(env)).toEqual([]);
    await daemon.close();

    // The same server with `delete`: a new file is synced, then removed.
    const added = await writeFileDeep(root, 'calls/y/c.wav', 5_000);
    await sshd.giveToUser(join(root, 'calls'));
    const config = { ...env.config, tenants: [{ ...env.config.tenants[0]!, afterSync: 'delete' as const }] };
    const second = await env.start({ config });
    await second.poller!.pollNow('acme');
    expect(await second.poller!.pollNow('acme')).toMatchObject({ enqueued: 1 });
    expect((await waitIdle(second.syncQueue)).failed).toBe(0);
    expect(existsSync(join(root, 'calls/y/c.wav'))).toBe(false);
    expect((await objects(env)).get(`${root.slice(1)}/calls/y/c.wav`)).toBe(added.sha256);
    expect(await pending(env)).toEqual([]);
  });
});

describeNeeding(missing.vsftpdAsRoot(), 'afterSync on vsftpd (LIST times, a system account)', () => {
  it('delete and move: files deleted / moved below new nested directories, objects intact', async () => {
    const { tempDir } = await import('./support/fs.js');
    const dir = await tempDir('after-vsftpd');
    try {
      const hashes = new Map<string, string>();
      const old = new Date(Date.now() - 3_600_000);
      for (const path of ['del/a.wav', 'del/x/b.wav', 'mv/c.wav', 'mv/y z/d.mp3']) {
        hashes.set(path, (await writeFileDeep(dir.path, path, 4_000 + path.length, { mtime: old })).sha256);
      }
      vsftpd = await startServer('vsftpd', { root: dir.path, mode: 'plain', writable: true });
      // vsftpd logs in as an unprivileged account: it may delete, rename and create here.
      const { execFileSync } = await import('node:child_process');
      execFileSync('chmod', ['-R', 'a+rwX', dir.path]);
      env = await makeTestEnv('after-vsftpd', {
        tenant: { ftp: tenantFtp(vsftpd), dirs: ['/del'], afterSync: 'delete' },
      });
      const ftp = tenantFtp(vsftpd);
      const config = {
        ...env.config,
        tenants: [
          env.config.tenants[0]!,
          {
            ...env.config.tenants[0]!,
            org: 'mv',
            dirs: ['/mv'],
            afterSync: 'move' as const,
            moveTo: '/done/{dir}/{name}',
          },
        ],
      };
      expect(ftp).toMatchObject({ secure: false });
      const daemon = await env.start({ config });
      // The schedulers' first polls run at start: a poll meanwhile is skipped (the poll lock).
      for (const org of ['acme', 'mv']) {
        for (let done = 0; done < 2; ) {
          if ((await daemon.poller!.pollNow(org)).kind === 'done') done++;
          else await delay(100);
        }
      }
      expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
      expect(await filesBelow(join(dir.path, 'del'))).toEqual([]);
      expect(await filesBelow(join(dir.path, 'mv'))).toEqual([]);
      expect(await filesBelow(join(dir.path, 'done'))).toEqual(['mv/c.wav', 'mv/y z/d.mp3']);
      for (const [path, hash] of hashes) {
        const [org, rest] = path.startsWith('del/') ? ['acme', path] : ['mv', path];
        const body = await getObjectBuffer(env.s3.client, env.s3.bucket, `${org}/${rest}`);
        expect(sha256(body), path).toBe(hash);
      }
      expect(writes(env).size).toBe(4);
      expect(await pending(env)).toEqual([]);
    } finally {
      await env?.stop();
      env = undefined;
      await vsftpd?.stop();
      vsftpd = undefined;
      await dir.cleanup();
    }
  });
});
