/**
 * After-sync crash safety: `kill -9` of the daemon after the upload and before the source file is
 * deleted (its DELE never answered). The pending action is in Redis; after a restart the file is
 * deleted exactly once and the object is not written a second time.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRedisAfterSyncStore } from '../../src/adapters/redis-after-sync.js';
import { waitFor } from '../support/wait.js';
import { type FaultEnv, logsOf, makeFaultEnv, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('after-sync crash safety', () => {
  it('kill -9 between the upload and the DELE: after a restart the file is deleted exactly once, the object written once', async () => {
    env = await makeFaultEnv('after-sync-crash');
    const e = env;
    await e.write('calls/a.wav', 60_000);
    await e.write('calls/b.wav', 10_000);
    const deles: string[] = [];
    e.ftp.faults.onCommand = (directive, arg) => {
      if (directive === 'DELE') deles.push(arg ?? '');
    };
    // The victim's DELEs are read and never answered: it dies with the action in flight.
    e.ftp.faults.hangOnCommand = 'DELE';
    const overrides = { tenants: [{ ...e.acme(), afterSync: 'delete' }] };
    const victim = await e.spawn('all', overrides, 'victim');
    await waitFor('a DELE sent', () => deles.length > 0);
    const store = makeRedisAfterSyncStore(e.redis, e.prefix);
    // The object is there and marked synced; the action is recorded, the file still on the server.
    const first = deles[0]!.replace(/^\//, '');
    expect(await e.head(`acme/${first}`)).toBeGreaterThan(0);
    expect((await store.get('acme', first))?.action).toBe('delete');
    expect(existsSync(join(e.root, first))).toBe(true);
    victim.kill('SIGKILL');
    expect(await victim.waitExit()).toEqual({ code: null, signal: 'SIGKILL' });

    e.ftp.faults.hangOnCommand = undefined;
    const before = deles.length;
    const rescuer = await e.spawn('all', overrides, 'rescuer');
    await e.waitSynced(120_000);
    await waitFor(
      'both files deleted',
      () => !existsSync(join(e.root, 'calls/a.wav')) && !existsSync(join(e.root, 'calls/b.wav')),
    );
    await waitFor('no pending action', async () => (await store.all('acme')).length === 0);
    await stopGracefully([rescuer]);

    // Exactly one DELE per file after the restart (a job re-run and the poller pass never both act).
    const after = deles.slice(before).map((p) => p.replace(/^\//, ''));
    // None of the victim's DELEs was carried out: the rescuer sends one per file, no more.
    expect(after.sort()).toEqual(['calls/a.wav', 'calls/b.wav']);
    // Every object intact and written once (verify), no failed job, nothing duplicated.
    await e.verify();
    expect(logsOf([rescuer], 'after-sync: done').map((l) => l.path)).toContain(first);
  });
});
