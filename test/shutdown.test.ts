/**
 * The fast half of the shutdown and connection-budget cases (the real-process ones are in
 * test/faults/): in-process daemons against real Redis, FTP and S3.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/main.js';
import { parseJobId, SYNC_QUEUE } from '../src/queue/jobs.js';
import { makeTestEnv, type TestEnv, waitIdle } from './support/daemon.js';
import { writeFileDeep } from './support/fs.js';

const MB = 1024 * 1024;

let env: TestEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

/**
 * Polls until `n` sync jobs exist. The daemon's own scheduler polls at start too, and a pollNow that
 * meets that poll is skipped (invariant 6): poll until the versions are stable and queued.
 */
async function pollUntilQueued(daemon: Daemon, n: number, ms = 20_000) {
  const until = Date.now() + ms;
  for (;;) {
    await daemon.poller!.pollNow('acme');
    // Files carried by the jobs: a group job's id says how many.
    const ids = await daemon.syncQueue.getRanges(
      ['waiting', 'active', 'delayed', 'prioritized', 'completed'],
      0,
      -1,
    );
    if (ids.reduce((k, id) => k + (parseJobId(id)?.files ?? 1), 0) >= n) return;
    if (Date.now() > until) throw new Error(`fewer than ${n} jobs queued after ${ms} ms`);
    await delay(50);
  }
}

async function firstPart(e: TestEnv, ms = 20_000) {
  const until = Date.now() + ms;
  while (!e.s3.requests().some((r) => /partNumber=/.test(r.path) && r.status === 200)) {
    if (Date.now() > until) throw new Error('no part uploaded');
    await delay(20);
  }
}

describe('shutdown and connection budget (in process)', () => {
  it('close() with a transfer longer than worker.shutdownTimeout: aborted, multipart upload aborted, job handed back untouched', async () => {
    env = await makeTestEnv('shutdown', {
      // Completed jobs kept: the test counts them.
      config: { worker: { concurrency: 2, shutdownTimeout: '500ms', keepCompleted: '1h' } },
    });
    await writeFileDeep(env.root, 'calls/long.wav', 24 * MB);
    env.ftp.faults.slowData = { path: /long\.wav$/, bytesPerSecond: 4 * MB };
    const daemon = await env.start();
    await pollUntilQueued(daemon, 1);
    await firstPart(env);
    const t0 = Date.now();
    await daemon.close();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(env.s3.requests().filter((r) => r.method === 'DELETE' && /uploadId=/.test(r.path))).toHaveLength(
      1,
    );
    expect(await env.store.head('acme/calls/long.wav')).toBeUndefined();
    const queue = new Queue(SYNC_QUEUE, { connection: env.redis, prefix: env.prefix });
    const [job] = await queue.getJobs(['waiting', 'delayed', 'prioritized', 'active', 'failed']);
    expect(await job!.getState()).toMatch(/waiting|delayed|prioritized/);
    expect(job!.attemptsMade, `${job!.failedReason} ${JSON.stringify(job!.stacktrace)}`).toBe(0);
    await queue.close();
    // Every FTP session was closed (the server notices a moment later; a session left open stays
    // forever, and the message says which one and what it last did).
    for (const until = Date.now() + 10_000; env.ftp.logins() > 0 && Date.now() < until; ) await delay(20);
    expect(
      env.ftp.logins(),
      `FTP sessions still logged in 10 s after close(): ${JSON.stringify(env.ftp.sessions())}\n${env.logs.lines.slice(-40).join('\n')}`,
    ).toBe(0);
    // A new daemon finishes it.
    env.ftp.faults.slowData = undefined;
    const next = await env.start();
    expect(await waitIdle(next.syncQueue)).toMatchObject({ failed: 0, completed: 1 });
    expect(await env.store.head('acme/calls/long.wav')).toMatchObject({ size: 24 * MB });
  });

  it('close() while a listing hangs: the daemon stops waiting for the poll at worker.shutdownTimeout', async () => {
    env = await makeTestEnv('shutdown-poll', {
      config: { worker: { shutdownTimeout: '500ms', keepCompleted: '1h' } },
    });
    await writeFileDeep(env.root, 'calls/a.wav', 1000);
    env.ftp.faults.listDelayMs = 60_000;
    const daemon = await env.start(); // its scheduler polls at once; the listing hangs
    const until = Date.now() + 10_000;
    while (!(await daemon.poller!.queue.getActiveCount())) {
      if (Date.now() > until) throw new Error('no poll started');
      await delay(50);
    }
    const t0 = Date.now();
    await daemon.close();
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(env.logs.text()).toMatch(/a poll was still running at the shutdown deadline/);
  });

  it('two daemons sharing Redis with maxConnections 2: the server never sees more than 2 logins at once', async () => {
    env = await makeTestEnv('budget', { config: { worker: { concurrency: 4, keepCompleted: '1h' } } }); // completed jobs counted
    for (let i = 0; i < 16; i++) await writeFileDeep(env.root, `calls/c-${i}.wav`, 400_000 + i);
    env.ftp.faults.slowData = { path: /\.wav$/, bytesPerSecond: 2 * MB };
    const a = await env.start();
    const b = await env.start();
    await pollUntilQueued(b, 16);
    expect(await waitIdle(a.syncQueue, 60_000)).toMatchObject({ failed: 0 });
    expect((await env.state.allSynced('acme')).size).toBe(16);
    expect(env.ftp.maxConcurrentLogins()).toBe(2);
  });
});
