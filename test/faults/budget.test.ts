/**
 * Invariant 5 across replicas: a tenant's FTP logins — polls and transfers, from every process —
 * never exceed its `maxConnections`; a server that refuses logins with 421 slows the sync down but
 * loses nothing and fails no job.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultEnv, logsOf, MB, makeFaultEnv, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

async function corpus(e: FaultEnv, n: number) {
  for (let i = 0; i < n; i++) {
    await e.write(`calls/day-${i % 3}/call-${i}.wav`, i % 5 === 0 ? 2 * MB + i : 20_000 + i * 997);
  }
}

describe('connection budget across replicas (invariant 5)', () => {
  it('three daemon processes, maxConnections 2: the server never sees more than 2 logins at once', async () => {
    env = await makeFaultEnv('budget-3');
    await corpus(env, 30);
    // Slow transfers so that the three processes really compete for the two slots.
    env.ftp.faults.slowData = { path: /\.wav$/, bytesPerSecond: 4 * MB };
    const procs = await Promise.all(
      ['a', 'b', 'c'].map((n) => env!.spawn('all', { worker: { concurrency: 4 } }, `replica-${n}`)),
    );
    await env.waitSynced(120_000);
    await stopGracefully(procs);
    expect(env.ftp.maxConcurrentLogins()).toBe(2);
    await env.verify();
    // Each file was synced by exactly one replica; more than one replica did work.
    const synced = logsOf(procs, 'synced');
    expect(synced).toHaveLength(30);
    expect(new Set(synced.map((l) => l.path)).size).toBe(30);
    expect(procs.filter((p) => logsOf([p], 'synced').length > 0).length).toBeGreaterThan(1);
  });

  it('a server that answers 421 to every third login: everything syncs, no job fails, the budget is lowered', async () => {
    env = await makeFaultEnv('budget-421', { faults: { refuseEveryNthLogin: 3 } });
    await corpus(env, 20);
    // Polls 6 s apart: sessions are closed after 5 s idle, so polls and transfers log in again and again.
    const overrides = { worker: { concurrency: 4 }, defaults: { pollInterval: '6s' } };
    const procs = await Promise.all(['a', 'b'].map((n) => env!.spawn('all', overrides, `replica-${n}`)));
    await env.waitSynced(120_000);
    for (let i = 0; i < 10; i++) await env.write(`calls/wave-2/call-${i}.wav`, 30_000 + i);
    await env.waitSynced(120_000);
    await stopGracefully(procs);
    expect(env.ftp.refusedLogins()).toBeGreaterThan(0);
    expect(env.ftp.maxConcurrentLogins()).toBeLessThanOrEqual(2);
    expect(
      logsOf(procs, 'server answered 421: lowering the connection budget and pausing logins').length,
    ).toBeGreaterThan(0);
    // A refused login is not a failed attempt: no job was retried because of it.
    expect(logsOf(procs, 'sync failed, will retry')).toEqual([]);
    await env.verify();
  });
});
