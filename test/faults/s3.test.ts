/**
 * S3 faults against a real daemon process, injected by the proxy in front of s3rver in the middle of
 * a run (while a multipart upload is under way and new files keep coming): 503 for 20 seconds, and a
 * store that stops answering. Jobs retry with backoff; nothing is marked synced early; every object
 * ends up intact and written once. The same cases run with a RADOS Gateway behind the proxy (one for
 * the file, test/support/rgw.ts), where the multipart uploads left open are also counted by the
 * store's own listing.
 */
import { afterEach, expect, it } from 'vitest';
import type { Rgw } from '../support/rgw.js';
import { describeEachStore, type FaultEnv, logsOf, makeFaultEnv, midRun, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

/** The cases, against s3rver or (when `rgw` gives one) a RADOS Gateway. */
function s3FaultCases(rgw: () => Rgw | undefined) {
  it('S3 answering 503 for 20 seconds: jobs retry with backoff, everything ends intact, written once', async () => {
    env = await makeFaultEnv('s3-503', { rgw: rgw() });
    const d = await midRun(env);
    const t0 = Date.now();
    env.s3.proxy.failFor(20_000, 503);
    for (let i = 0; i < 5; i++) await env.write(`calls/during-${i}.wav`, 30_000 + i);
    await env.waitSynced(90_000);
    const ms = Date.now() - t0;
    await stopGracefully([d]);
    expect(env.s3.requests().filter((r) => r.status === 503).length).toBeGreaterThan(0);
    expect(logsOf([d], 'sync failed, will retry').length).toBeGreaterThan(0);
    expect(ms).toBeGreaterThanOrEqual(20_000);
    await env.verify({ openUploads: 'abort-failed' });
    console.log(`s3-503: synced ${((ms - 20_000) / 1000).toFixed(1)} s after the store recovered`);
  });

  it('S3 that stops answering for 15 seconds: the upload is aborted after s3.idleTimeout and retried, no worker hangs', async () => {
    env = await makeFaultEnv('s3-stall', { rgw: rgw() });
    const d = await midRun(env, { s3: { idleTimeout: '3s' } });
    env.s3.proxy.stall(15_000);
    for (let i = 0; i < 3; i++) await env.write(`calls/during-${i}.wav`, 30_000 + i);
    await env.waitSynced(90_000);
    await stopGracefully([d]);
    const retried = logsOf([d], 'sync failed, will retry');
    expect(retried.map((l) => String(l.err)).join('\n')).toMatch(/no progress|timed out|Timeout/i);
    await env.verify({ openUploads: 'abort-failed' });
  });
}

describeEachStore('S3 faults in the middle of a run', s3FaultCases);
