/**
 * Server-side limits: a server that caps a listing, and servers that refuse logins beyond a per-user
 * (or per-IP) count while the tenant's `maxConnections` allows more.
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { type TempDir, tempDir, writeFileDeep } from '../support/fs.js';
import { type ServerEnv, startServerEnv } from '../support/servers/daemon-env.js';
import {
  type FtpServerUnderTest,
  type ServerKind,
  startServer,
  type TlsMode,
  tenantFtp,
} from '../support/servers/index.js';
import { makeTestPki, type TestPki } from '../support/tls.js';

const HOUR = 3_600_000;

let pki: TestPki;
beforeAll(async () => {
  pki = await makeTestPki();
});
afterAll(async () => {
  await pki?.cleanup();
});

describe('a listing capped by the server (pure-ftpd -L 20)', () => {
  let dir: TempDir;
  let server: FtpServerUnderTest;
  let env: ServerEnv;

  beforeAll(async () => {
    dir = await tempDir('interop-cap');
    const old = new Date(Date.now() - HOUR);
    for (let i = 0; i < 30; i++) await writeFileDeep(dir.path, `big/rec-${i}.wav`, 1_000 + i, { mtime: old });
    server = await startServer('pure-ftpd', {
      root: dir.path,
      mode: 'plain',
      maxListing: 20,
      debRoot: inject('interopDebRoot'),
    });
    env = await startServerEnv('cap', [{ org: 'capped', ftp: tenantFtp(server) }]);
  });
  afterAll(async () => {
    await env?.stop();
    await server?.stop();
    await dir?.cleanup();
  });

  it('syncs what was listed and logs that the listing was truncated', async () => {
    const outcome = await env.poll('capped');
    // MLSD counts its `.` entry against the cap: 19 of the 30 files are listed.
    expect(outcome).toMatchObject({ matched: 19, enqueued: 19 });
    expect((await env.idle()).failed).toBe(0);
    expect((await env.objects('capped')).size).toBe(19);
    const warning = env.logs.lines
      .map((l) => JSON.parse(l) as { level: number; msg: string; path?: string })
      .find((l) => /truncated/i.test(l.msg));
    expect(warning).toMatchObject({ level: 40, path: '/big' });
    expect(warning?.msg).toMatch(/Output truncated to 20 matches/);
  });
});

describe('a LIST cap of proftpd (ListOptions maxfiles 20)', () => {
  let dir: TempDir;
  let server: FtpServerUnderTest;
  let env: ServerEnv;

  beforeAll(async () => {
    dir = await tempDir('interop-cap-proftpd');
    const old = new Date(Date.now() - HOUR);
    for (let i = 0; i < 30; i++) await writeFileDeep(dir.path, `big/rec-${i}.wav`, 1_000 + i, { mtime: old });
    server = await startServer('proftpd', {
      root: dir.path,
      mode: 'plain',
      maxListing: 20,
      debRoot: inject('interopDebRoot'),
    });
    env = await startServerEnv('cap-proftpd', [{ org: 'capped', ftp: tenantFtp(server) }]);
  });
  afterAll(async () => {
    await env?.stop();
    await server?.stop();
    await dir?.cleanup();
  });

  it('does not touch MLSD, which ftp-sync uses there: every file is synced', async () => {
    expect(await env.poll('capped')).toMatchObject({ matched: 30, enqueued: 30 });
    expect((await env.idle()).failed).toBe(0);
    expect((await env.objects('capped')).size).toBe(30);
  });
});

/** Each server limits the test user (vsftpd: the client IP) to 2 sessions; the tenant allows 6. */
const LIMITED: [ServerKind, TlsMode][] = [
  ['vsftpd', 'explicit'],
  ['vsftpd', 'implicit'],
  ['pure-ftpd', 'explicit'],
  ['proftpd', 'explicit'],
];

describe.each(LIMITED)('%s over %s allowing 2 logins, tenant maxConnections 6', (kind, mode) => {
  let dir: TempDir;
  let server: FtpServerUnderTest;
  let env: ServerEnv | undefined;
  const files = 24;

  beforeAll(async () => {
    dir = await tempDir(`interop-logins-${kind}`);
    const old = new Date(Date.now() - HOUR);
    for (let i = 0; i < files; i++) {
      await writeFileDeep(dir.path, `calls/d${i % 4}/rec-${i}.wav`, 200_000 + i, { mtime: old });
    }
    server = await startServer(kind, {
      root: dir.path,
      mode,
      pki,
      maxLogins: 2,
      debRoot: inject('interopDebRoot'),
    });
  });
  afterEach(async () => {
    await env?.stop();
  });
  afterAll(async () => {
    await server?.stop();
    await dir?.cleanup();
  });

  it('backs off on the refusals and still syncs every file, with no failed job', async () => {
    env = await startServerEnv(
      `logins-${kind}-${mode}`,
      [{ org: 'busy', ftp: tenantFtp(server), maxConnections: 6 }],
      { concurrency: 8 },
    );
    expect(await env.poll('busy')).toMatchObject({ enqueued: files });
    const counts = await env.idle(90_000);
    expect(counts.failed).toBe(0);
    expect((await env.objects('busy')).size).toBe(files);
    expect(env.puts()).toBe(files);
    const lines = env.logs.lines.map((l) => JSON.parse(l) as { msg: string; org?: string });
    expect(lines.some((l) => l.msg.includes('lowering the connection budget'))).toBe(true);
    expect(lines.filter((l) => /failed/.test(l.msg))).toEqual([]);
  });
});
