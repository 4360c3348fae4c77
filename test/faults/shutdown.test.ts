/**
 * Graceful shutdown (SIGTERM/SIGINT) of real daemon processes: stop polling, stop taking jobs, let
 * transfers finish within `worker.shutdownTimeout`, then abort them (multipart upload aborted, job
 * handed back, not counted as an attempt), close connections, exit 0. A second signal exits at once.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultEnv, logsOf, MB, makeFaultEnv, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

/** Resolves when the proxy saw `n` successful UploadPart requests. */
async function partsUploaded(e: FaultEnv, n: number, ms = 30_000) {
  const until = Date.now() + ms;
  while (e.s3.requests().filter((r) => /partNumber=/.test(r.path) && r.status === 200).length < n) {
    if (Date.now() > until) throw new Error(`fewer than ${n} parts uploaded in ${ms} ms`);
    await delay(50);
  }
}

describe('graceful shutdown of a daemon process', () => {
  it('SIGTERM during a transfer: the transfer finishes within shutdownTimeout, then the process exits 0', async () => {
    env = await makeFaultEnv('shutdown-finish');
    await env.write('calls/a.wav', 24 * MB);
    env.ftp.faults.slowData = { path: /a\.wav$/, bytesPerSecond: 8 * MB };
    const d = await env.spawn('all', { worker: { shutdownTimeout: '30s' } });
    await partsUploaded(env, 1);
    const t0 = Date.now();
    d.kill('SIGTERM');
    expect(await d.waitExit(30_000)).toEqual({ code: 0, signal: null });
    const ms = Date.now() - t0;
    expect(logsOf([d], 'synced')).toHaveLength(1);
    expect(logsOf([d], 'ftp-sync stopped')).toHaveLength(1);
    await env.verify();
    expect(ms).toBeLessThan(30_000);
  });

  it('SIGTERM with a transfer longer than shutdownTimeout: aborted, multipart upload aborted, job handed back and finished by the next worker', async () => {
    env = await makeFaultEnv('shutdown-abort');
    await env.write('calls/long.wav', 40 * MB);
    env.ftp.faults.slowData = { path: /long\.wav$/, bytesPerSecond: 3 * MB };
    const d = await env.spawn('all', { worker: { shutdownTimeout: '1s' } });
    await partsUploaded(env, 1);
    const t0 = Date.now();
    d.kill('SIGTERM');
    expect(await d.waitExit(20_000)).toEqual({ code: 0, signal: null });
    const ms = Date.now() - t0;
    // Deadline (1 s) + abort; far less than the ~10 s the transfer still needed.
    expect(ms).toBeLessThan(8_000);
    const aborts = env.s3.requests().filter((r) => r.method === 'DELETE' && /uploadId=/.test(r.path));
    expect(aborts).toHaveLength(1);
    expect(await env.head('acme/calls/long.wav')).toBeUndefined();
    const [job] = await env.syncQueue.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(job, 'the job is back in the queue').toBeDefined();
    expect(job!.attemptsMade).toBe(0);
    expect(await env.syncQueue.getJobCounts('failed', 'active')).toEqual({ failed: 0, active: 0 });

    env.ftp.faults.slowData = undefined;
    const next = await env.spawn('worker');
    await env.waitSynced();
    await stopGracefully([next]);
    await env.verify();
  });

  it('a second signal exits at once', async () => {
    env = await makeFaultEnv('shutdown-twice');
    await env.write('calls/slow.wav', 40 * MB);
    env.ftp.faults.slowData = { path: /slow\.wav$/, bytesPerSecond: 2 * MB };
    const d = await env.spawn('all', { worker: { shutdownTimeout: '60s' } });
    await partsUploaded(env, 1);
    d.kill('SIGTERM');
    await d.waitForLog((l) => l.msg === 'shutting down: finishing transfers');
    const t0 = Date.now();
    d.kill('SIGINT');
    expect(await d.waitExit(5_000)).toEqual({ code: 130, signal: null });
    expect(Date.now() - t0).toBeLessThan(2_000);
  });
});
