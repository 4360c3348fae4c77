/**
 * Crash safety: `kill -9` of the worker in the middle of a 200 MB multipart upload. The job is picked
 * up again by another worker through BullMQ's stalled-job recovery (`worker.lockDuration` +
 * `worker.stalledInterval`), and the object ends complete and correct, written exactly once. The
 * killed worker's multipart upload, recorded in Redis, is aborted by the rescuer's start-up cleanup.
 * Also against a RADOS Gateway (one for the file), whose own listing then shows no upload left open.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, expect, it } from 'vitest';
import type { Rgw } from '../support/rgw.js';
import { describeEachStore, type FaultEnv, logsOf, MB, makeFaultEnv, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

function crashCase(rgw: () => Rgw | undefined) {
  it('kill -9 of the worker during a 200 MB upload: another worker takes the stalled job and resumes its upload; the object is written once, intact', async () => {
    env = await makeFaultEnv('crash', { rgw: rgw() });
    await env.write('calls/big.wav', 200 * MB);
    await env.write('calls/small.wav', 50_000);
    const a = await env.spawn('all', { worker: { concurrency: 2 } }, 'victim');
    // Wait until a good part of the upload is done (8 MiB parts), then kill without warning.
    const until = Date.now() + 60_000;
    while (env.s3.requests().filter((r) => /partNumber=/.test(r.path) && r.status === 200).length < 6) {
      if (Date.now() > until) throw new Error('the upload did not get going');
      await delay(20);
    }
    a.kill('SIGKILL');
    expect(await a.waitExit()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await env.head('acme/calls/big.wav')).toBeUndefined();
    const killedAt = Date.now();

    // The killed worker's multipart upload, recorded in Redis when it was created.
    const victimId = env.s3
      .requests()
      .map((r) => /[?&]uploadId=([^&]+)/.exec(r.path)?.[1])
      .find(Boolean);
    expect(victimId).toBeDefined();

    const b = await env.spawn('all', {}, 'rescuer');
    await env.waitSynced(120_000);
    const recoveredMs = Date.now() - killedAt;
    // The rescuer's first cleanup pass comes `worker.lockDuration` after its start; a fast resume can
    // finish before it. Stopped earlier, an upload it did not adopt would stay open.
    const passUntil = Date.now() + 60_000;
    while (logsOf([b], 'stale upload cleanup pass done').length === 0) {
      if (Date.now() > passUntil) throw new Error('the rescuer made no stale-upload cleanup pass in 60 s');
      await delay(100);
    }
    await stopGracefully([b]);
    await env.verify({ openUploads: 0 }); // whole, intact; against RGW, also by the store's own listing
    // The rescuer took the killed worker's upload over (its owner's lease is gone) and continued it
    // after the parts S3 held (resume): no second multipart upload, nothing aborted, ≥ 6 parts of
    // 8 MiB not read again.
    const creates = env.s3.requests().filter((r) => r.method === 'POST' && /[?&]uploads/.test(r.path));
    expect(creates).toHaveLength(1);
    expect(
      env.s3.requests().filter((r) => r.method === 'DELETE' && r.path.includes(`uploadId=${victimId}`)),
    ).toHaveLength(0);
    const [resumed] = logsOf([b], 'transfer resumed');
    expect(Number(resumed?.offset), 'resumed after the parts in S3').toBeGreaterThanOrEqual(6 * 8 * MB);
    // The rescuer logged the upload (stalled-job recovery), not a second copy from a poll.
    expect(logsOf([b], 'synced').map((l) => l.path)).toContain('calls/big.wav');
    // s3rver cannot list multipart uploads (501): the cleanup says so once and goes on. RGW can.
    expect(logsOf([b], /does not list multipart uploads/)).toHaveLength(env.s3.backend === 'rgw' ? 0 : 1);
    console.log(
      `crash: recovered and completed ${(recoveredMs / 1000).toFixed(1)} s after kill -9, resumed at ${(Number(resumed?.offset) / MB).toFixed(0)} MiB`,
    );
  });
}

describeEachStore('crash safety', crashCase);
