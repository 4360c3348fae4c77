/**
 * Redis faults, each against a redis-server of its own (restarting the shared one would break every
 * other test): the connection lost in the middle of a run (Redis restarted with its data) and Redis
 * restarted empty (data loss) in the middle of a run.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultEnv, logsOf, MB, makeFaultEnv, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

async function partUploaded(e: FaultEnv) {
  const until = Date.now() + 30_000;
  while (!e.s3.requests().some((r) => /partNumber=/.test(r.path) && r.status === 200)) {
    if (Date.now() > until) throw new Error('the upload did not start');
    await delay(20);
  }
}

describe('Redis faults', () => {
  it('the connection to Redis lost in the middle of a run: pollers and workers wait and resume without a restart', async () => {
    env = await makeFaultEnv('redis-lost', { dedicatedRedis: true });
    await env.write('calls/big.wav', 24 * MB);
    for (let i = 0; i < 5; i++) await env.write(`calls/before-${i}.wav`, 20_000 + i);
    env.ftp.faults.slowData = { path: /big\.wav$/, bytesPerSecond: 6 * MB };
    const poller = await env.spawn('poller', {}, 'poller');
    const worker = await env.spawn('worker', {}, 'worker');
    await partUploaded(env);
    await env.redisServer!.restart({ wipe: false });
    for (let i = 0; i < 5; i++) await env.write(`calls/after-${i}.wav`, 30_000 + i);
    // Polls can pause for up to the poll lock's TTL (20 s): a lock release lost with the connection
    // (or rolled back with Redis's data) is only undone by the TTL.
    await env.waitSynced(120_000);
    expect(poller.exited || worker.exited).toBe(false);
    await stopGracefully([poller, worker]);
    await env.verify();
  });

  it('Redis restarted empty in the middle of a run: nothing already in S3 is uploaded again, sync state is rebuilt', async () => {
    env = await makeFaultEnv('redis-wiped', { dedicatedRedis: true });
    for (let i = 0; i < 10; i++) await env.write(`calls/first-${i}.wav`, 20_000 + i);
    const d = await env.spawn('all');
    await env.waitSynced(60_000);
    // More work under way when Redis loses everything: a slow upload and new files.
    await env.write('calls/big.wav', 24 * MB);
    env.ftp.faults.slowData = { path: /big\.wav$/, bytesPerSecond: 6 * MB };
    for (let i = 0; i < 5; i++) await env.write(`calls/second-${i}.wav`, 30_000 + i);
    await partUploaded(env);
    await env.redisServer!.restart({ wipe: true });
    // Job schedulers, jobs and sync state are gone: the poller recreates its schedulers (every 10 s),
    // polls find every file again, and a HEAD finds those already in S3.
    await env.waitSynced(90_000);
    expect(d.exited).toBe(false);
    await stopGracefully([d]);
    expect(logsOf([d], 'already in S3: sync state rebuilt').length).toBeGreaterThanOrEqual(10);
    await env.verify();
  });
});
