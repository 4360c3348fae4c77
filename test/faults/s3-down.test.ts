/**
 * S3 unreachable (every connection reset) for a minute in the middle of a run: the SDK's own retries
 * are exhausted within seconds, so the jobs fail and are retried with backoff (2 s, 4 s, … full
 * jitter) for the whole minute without running out of attempts. Against s3rver and against a RADOS
 * Gateway (one for the file), where the store's own listing counts the uploads left open.
 */
import { afterEach, expect, it } from 'vitest';
import type { Rgw } from '../support/rgw.js';
import { describeEachStore, type FaultEnv, logsOf, makeFaultEnv, midRun, stopGracefully } from './harness.js';

const OUTAGE_MS = 60_000;

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

function s3DownCase(rgw: () => Rgw | undefined) {
  it('S3 unreachable for a minute: jobs retry, everything ends intact, written once', {
    timeout: 300_000,
  }, async () => {
    env = await makeFaultEnv('s3-down', { rgw: rgw() });
    const d = await midRun(env);
    const t0 = Date.now();
    env.s3.proxy.down(OUTAGE_MS);
    for (let i = 0; i < 5; i++) await env.write(`calls/during-${i}.wav`, 30_000 + i);
    await env.waitSynced(OUTAGE_MS + 150_000);
    const ms = Date.now() - t0;
    await stopGracefully([d]);
    // Connections were reset (the proxy logs no request for those): the jobs failed and were retried.
    const retried = logsOf([d], 'sync failed, will retry');
    expect(retried.length).toBeGreaterThan(0);
    expect(retried.map((l) => String(l.err)).join('\n')).toMatch(
      /ECONNRESET|socket hang up|EPIPE|ECONNREFUSED/,
    );
    expect(ms).toBeGreaterThanOrEqual(OUTAGE_MS);
    // The upload cut by the outage could not be aborted (the store was unreachable): at most that one is
    // left open, for the hourly cleanup of stale uploads and the bucket's lifecycle rule.
    await env.verify({ openUploads: 1 });
    console.log(`s3-down: synced ${((ms - OUTAGE_MS) / 1000).toFixed(1)} s after the store came back`);
  });
}

describeEachStore('S3 unreachable', s3DownCase);
