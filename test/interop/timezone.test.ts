/**
 * Servers in another timezone (TZ of the server process; vsftpd with `use_localtime=YES`, proftpd
 * with `TimesGMT off`, pure-ftpd always local): LIST times are the server's local time with no zone
 * said, MLSD times are UTC. Change detection must still work, and stable detection must not read a
 * LIST time as UTC — in New York (UTC−5/−4) a file written just now would look hours old.
 */
import { join } from 'node:path';
import { Client } from 'basic-ftp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectFtp } from '../../src/adapters/ftp.js';
import { type TempDir, tempDir, writeFileDeep } from '../support/fs.js';
import { type ServerEnv, startServerEnv } from '../support/servers/daemon-env.js';
import {
  type FtpServerUnderTest,
  type ServerKind,
  startServer,
  TRAITS,
  tenantFtp,
} from '../support/servers/index.js';

const TZ = 'America/New_York';
const HOUR = 3_600_000;

/**
 * `Nov 23 14:28` as a unix LIST shows `date` in `timeZone`. Servers differ on the day below 10
 * (`Dec  1`, `Dec 01`): compare through `sameListTime`.
 */
function listTime(date: Date, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  return `${parts.month} ${parts.day} ${parts.hour}:${parts.minute}`;
}

/** A LIST time string with runs of spaces folded and a leading zero of the day dropped. */
const sameListTime = (raw: string) => raw.replace(/\s+/g, ' ').replace(/^(\w+) 0(\d) /, '$1 $2 ');

describe.each<ServerKind>(['vsftpd', 'pure-ftpd', 'proftpd'])(`%s in ${TZ}`, (kind) => {
  let dir: TempDir;
  let server: FtpServerUnderTest;
  let env: ServerEnv;
  const twoHoursAgo = new Date(Math.floor((Date.now() - 2 * HOUR) / 60_000) * 60_000 + 7_000);
  const { mlsd } = TRAITS[kind];

  beforeAll(async () => {
    dir = await tempDir(`interop-tz-${kind}`);
    await writeFileDeep(dir.path, 'sync/a.wav', 1_000, { mtime: twoHoursAgo });
    await writeFileDeep(dir.path, 'sync/b.wav', 2_000, { mtime: twoHoursAgo });
    await writeFileDeep(dir.path, 'wait/fresh.wav', 3_000);
    await writeFileDeep(dir.path, 'wait/old.wav', 4_000, { mtime: twoHoursAgo });
    server = await startServer(kind, {
      root: dir.path,
      mode: 'plain',
      tz: TZ,
      debRoot: inject('interopDebRoot'),
    });
    const ftp = tenantFtp(server);
    env = await startServerEnv(`tz-${kind}`, [
      { org: 'tz-sync', ftp, dirs: ['/sync'], minFileAge: '1ms' },
      { org: 'tz-wait', ftp, dirs: ['/wait'], minFileAge: '1h' },
    ]);
  });
  afterAll(async () => {
    await env?.stop();
    await server?.stop();
    await dir?.cleanup();
  });

  it(
    mlsd ? 'lists exact UTC times (MLSD) whatever its timezone' : `lists ${TZ} local times (LIST)`,
    async () => {
      const session = await connectFtp(env.config.tenants[0]!, {
        user: server.user,
        password: server.password,
      });
      try {
        const a = (await session.list('/sync')).find((e) => e.name === 'a.wav')!;
        expect(a.mtimeExact).toBe(mlsd);
        expect(mlsd ? a.mtime : sameListTime(a.mtime)).toBe(
          mlsd ? twoHoursAgo.toISOString() : listTime(twoHoursAgo, TZ),
        );
      } finally {
        session.close();
      }
    },
  );

  it(`shows ${TZ} local times in a plain LIST`, async () => {
    const client = new Client(10_000);
    try {
      await client.access({
        host: server.host,
        port: server.port,
        user: server.user,
        password: server.password,
      });
      client.availableListCommands = ['LIST'];
      const a = (await client.list('/sync')).find((f) => f.name === 'a.wav')!;
      expect(sameListTime(a.rawModifiedAt)).toBe(listTime(twoHoursAgo, TZ));
    } finally {
      client.close();
    }
  });

  it('syncs, then detects a changed file', async () => {
    expect(await env.poll('tz-sync')).toMatchObject({ enqueued: 2 });
    expect((await env.idle()).failed).toBe(0);
    expect([...(await env.objects('tz-sync')).keys()].sort()).toEqual(['sync/a.wav', 'sync/b.wav']);
    const changed = await writeFileDeep(dir.path, 'sync/a.wav', 1_111);
    expect(await env.poll('tz-sync')).toMatchObject({ enqueued: 0, waiting: 1, unchanged: 1 });
    expect(await env.poll('tz-sync')).toMatchObject({ enqueued: 1 });
    expect((await env.idle()).failed).toBe(0);
    expect((await env.objects('tz-sync')).get('sync/a.wav')).toBe(changed.sha256);
  });

  it(
    mlsd
      ? 'holds a fresh file for minFileAge and lets an old one go (exact times)'
      : 'holds both a fresh and an old file: a LIST time is never trusted, the age counts from first sight',
    async () => {
      // The scheduler's first poll saw both; this second one decides.
      const outcome = await env.poll('tz-wait');
      expect(outcome).toMatchObject({ enqueued: mlsd ? 1 : 0, waiting: mlsd ? 1 : 2 });
      await env.idle();
      const keys = [...(await env.objects('tz-wait')).keys()];
      expect(keys).toEqual(mlsd ? ['wait/old.wav'] : []);
      expect(keys).not.toContain(join('wait', 'fresh.wav'));
    },
  );
});
