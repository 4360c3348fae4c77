/**
 * Group sync jobs under crash and shutdown: `kill -9` of the worker half way through a group, and a
 * SIGTERM whose deadline cuts a group short. Either way the group's unfinished files are synced by
 * the next worker, each object whole and written once, and nothing stays queued.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultEnv, logsOf, makeFaultEnv, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

/** 30 files of 60 KB served at 300 KB/s: a group of 15 takes about three seconds. */
async function slowGroups(name: string) {
  const e = await makeFaultEnv(name, {
    faults: { slowData: { path: /calls\/g-/, bytesPerSecond: 300_000 } },
  });
  for (let i = 0; i < 30; i++) await e.write(`calls/g-${i}.wav`, 60_000);
  return e;
}

/** Waits until at least `n` of the files are in S3. */
async function synced(e: FaultEnv, n: number) {
  const until = Date.now() + 60_000;
  while ((await e.state.allSynced('acme')).size < n) {
    if (Date.now() > until) throw new Error(`fewer than ${n} files synced in 60 s`);
    await delay(50);
  }
}

describe('group jobs: crash and shutdown', () => {
  it('kill -9 half way through its groups: the rescuer finishes them; every object whole and written once', async () => {
    env = await slowGroups('group-crash');
    const a = await env.spawn('all', { defaults: { maxConnections: 2 } }, 'victim');
    await synced(env, 6);
    a.kill('SIGKILL');
    expect(await a.waitExit()).toEqual({ code: null, signal: 'SIGKILL' });
    const before = (await env.state.allSynced('acme')).size;
    expect(before, 'killed half way').toBeLessThan(30);
    // The victim ran groups, not a job per file.
    expect(logsOf([a], 'synced').length).toBeGreaterThan(0);
    const b = await env.spawn('all', { defaults: { maxConnections: 2 } }, 'rescuer');
    await env.waitSynced(120_000);
    await stopGracefully([b]);
    await env.verify();
    const groups = (await env.syncQueue.getCompleted()).filter((j) => /^g\d+-acme-/.test(j.id ?? ''));
    expect(groups.length, 'the files went in groups').toBeGreaterThan(0);
  });

  it('SIGTERM with groups running: the unfinished files are handed back and synced by the next worker', async () => {
    env = await slowGroups('group-shutdown');
    const a = await env.spawn('all', {
      defaults: { maxConnections: 2 },
      worker: { shutdownTimeout: '500ms' },
    });
    await synced(env, 4);
    a.kill('SIGTERM');
    expect(await a.waitExit(30_000)).toEqual({ code: 0, signal: null });
    expect((await env.state.allSynced('acme')).size, 'cut short').toBeLessThan(30);
    const b = await env.spawn('all', { defaults: { maxConnections: 2 } });
    await env.waitSynced(120_000);
    await stopGracefully([b]);
    await env.verify();
  });
});
