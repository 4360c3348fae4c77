/**
 * Races: two daemon processes polling the same tenant and taking jobs from the same queue, and the
 * source file changing while it is being transferred.
 */
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultEnv, logsOf, MB, makeFaultEnv, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('races', () => {
  it('two processes racing for the same jobs: every version is uploaded once, by one of them', async () => {
    env = await makeFaultEnv('race-workers');
    for (let i = 0; i < 40; i++) await env.write(`calls/agent-${i % 4}/call-${i}.wav`, 5_000 + i * 101);
    await env.write('calls/big-1.wav', 9 * MB);
    await env.write('calls/big-2.wav', 10 * MB);
    const procs = await Promise.all(['a', 'b'].map((n) => env!.spawn('all', {}, `replica-${n}`)));
    await env.waitSynced(90_000);
    await stopGracefully(procs);
    const synced = logsOf(procs, 'synced').map((l) => String(l.path));
    expect(synced.length).toBe(env.files.size);
    expect(new Set(synced).size).toBe(env.files.size);
    // Both pollers added jobs for the same versions; the deterministic job id made them one job each.
    expect(logsOf(procs, 'poll done').length).toBeGreaterThan(1);
    await env.verify();
  });

  it('a listing slower than the poll interval, two pollers: the polls of one tenant never overlap (invariant 6)', async () => {
    env = await makeFaultEnv('race-polls');
    for (let d = 0; d < 4; d++) await env.write(`calls/d${d}/a.wav`, 10_000 + d);
    env.ftp.faults.listDelayMs = 400; // 5 listings: a poll takes 2 s, polls are due every second
    const procs = await Promise.all(['a', 'b'].map((n) => env!.spawn('poller', {}, `poller-${n}`)));
    const worker = await env.spawn('worker', {}, 'worker');
    await env.waitSynced(60_000);
    await delay(4_000); // a few more polls of a tenant with nothing to do
    await stopGracefully([...procs, worker]);
    // Every finished poll logs its end time and duration: the intervals must not overlap.
    const polls = logsOf(procs, 'poll done')
      .map((l) => ({ end: Date.parse(String(l.time)), ms: Number(l.ms) }))
      .map((p) => ({ start: p.end - p.ms, end: p.end }))
      .sort((x, y) => x.start - y.start);
    expect(polls.length).toBeGreaterThanOrEqual(3);
    expect(polls.every((p) => p.end - p.start >= 1_500)).toBe(true);
    for (let i = 1; i < polls.length; i++) {
      // 50 ms of slack: the two processes' clocks are the same, their log times are taken a little apart.
      expect(polls[i]!.start, `poll ${i} starts before poll ${i - 1} ended`).toBeGreaterThanOrEqual(
        polls[i - 1]!.end - 50,
      );
    }
    await env.verify();
  });

  it('the source file changing while it is transferred: no object of the old version, the new version is uploaded once', async () => {
    env = await makeFaultEnv('race-changing');
    await env.write('calls/growing.wav', 24 * MB);
    await env.write('calls/steady.wav', 30_000);
    env.ftp.faults.slowData = { path: /growing\.wav$/, bytesPerSecond: 6 * MB };
    const d = await env.spawn('all');
    const until = Date.now() + 30_000;
    while (!env.s3.requests().some((r) => /partNumber=/.test(r.path) && r.status === 200)) {
      if (Date.now() > until) throw new Error('the upload did not start');
      await delay(20);
    }
    // The file grows while it is being read: more bytes arrive than the listing said.
    await appendFile(join(env.root, 'calls/growing.wav'), Buffer.alloc(MB, 7));
    await env.rehash('calls/growing.wav');
    await env.waitSynced(90_000);
    await stopGracefully([d]);
    const failed = logsOf([d], 'sync failed, will retry').filter((l) => l.path === 'calls/growing.wav');
    expect(failed.map((l) => String(l.err))).toEqual([
      expect.stringMatching(/more than the listed \d+ bytes/),
    ]);
    // The retry saw the listing change: that job ended as superseded, the new version had its own job.
    expect(logsOf([d], 'superseded by a newer version').map((l) => l.path)).toContain('calls/growing.wav');
    await env.verify();
    expect(await env.head('acme/calls/growing.wav')).toBe(25 * MB);
  });
});
