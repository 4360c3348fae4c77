/**
 * S3 unreachable (every connection reset) in the middle of a run. The issue asks for a minute; the
 * suite uses 20 seconds to keep `npm run test:faults` short — the code path is the same (SDK retries
 * exhausted, job retried with backoff), only the number of job attempts differs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultEnv, logsOf, makeFaultEnv, midRun, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('S3 unreachable', () => {
  it('S3 unreachable for 20 seconds (shortened from a minute): jobs retry, everything ends intact, written once', async () => {
    env = await makeFaultEnv('s3-down');
    const d = await midRun(env);
    const t0 = Date.now();
    env.s3.proxy.down(20_000);
    for (let i = 0; i < 5; i++) await env.write(`calls/during-${i}.wav`, 30_000 + i);
    await env.waitSynced(90_000);
    const ms = Date.now() - t0;
    await stopGracefully([d]);
    // Connections were reset (the proxy logs no request for those): the jobs failed and were retried.
    const retried = logsOf([d], 'sync failed, will retry');
    expect(retried.length).toBeGreaterThan(0);
    expect(retried.map((l) => String(l.err)).join('\n')).toMatch(
      /ECONNRESET|socket hang up|EPIPE|ECONNREFUSED/,
    );
    expect(ms).toBeGreaterThanOrEqual(20_000);
    // The upload cut by the outage could not be aborted (the store was unreachable): at most that one is
    // left open, for the hourly cleanup of stale uploads and the bucket's lifecycle rule.
    await env.verify({ openUploads: 1 });
    console.log(`s3-down: synced ${((ms - 20_000) / 1000).toFixed(1)} s after the store came back`);
  });
});
