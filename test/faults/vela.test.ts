/**
 * Vela down for a minute in the middle of a run: the allocation check fails, the job is retried with
 * backoff for the whole minute without running out of attempts. No recording is uploaded without an
 * allocation check while Vela is down.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultEnv, logsOf, makeFaultEnv, stopGracefully } from './harness.js';

const OUTAGE_MS = 60_000;

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('Vela down', () => {
  it('Vela unreachable for a minute: recordings wait and retry, none is uploaded unchecked', {
    timeout: 300_000,
  }, async () => {
    env = await makeFaultEnv('vela-down', { vela: true });
    for (let i = 0; i < 4; i++) await env.write(`calls/before-${i}.wav`, 20_000 + i);
    const d = await env.spawn('all');
    await d.waitForLog((l) => l.msg === 'synced');
    const vela = env.vela!;
    vela.setDown('refuse');
    const downAt = Date.now();
    for (let i = 0; i < 6; i++) await env.write(`calls/during-${i}.wav`, 30_000 + i);
    // While Vela is down, none of the new recordings reaches S3.
    await delay(OUTAGE_MS - (Date.now() - downAt));
    for (let i = 0; i < 6; i++) expect(await env.head(`acme/calls/during-${i}.wav`)).toBeUndefined();
    vela.setDown(false);
    await env.waitSynced(150_000);
    console.log(
      `vela-down: synced ${((Date.now() - downAt - OUTAGE_MS) / 1000).toFixed(1)} s after Vela came back`,
    );
    await stopGracefully([d]);
    expect(logsOf([d], 'sync failed, will retry').length).toBeGreaterThan(0);
    await env.verify();
    // Every recording went through an allocation check: Vela's voice_id status is on each object.
    for (const path of env.files.keys()) {
      const head = await env.s3.directClient.send(
        new HeadObjectCommand({ Bucket: env.s3.bucket, Key: `acme/${path}` }),
      );
      expect(head.Metadata?.['voice-id'], path).toBeTruthy();
    }
  });
});
