/**
 * The request-saving upload paths (issue 6, performance): a file between 16 MiB and
 * `s3.multipartThreshold` (when raised above its default) streams as one PutObject, aborted when the
 * source fails; a job whose poll found no
 * object under its key sends no HEAD before its upload on its first run, and one that finds the
 * object is still checked (invariant 2).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { makeS3Store } from '../src/adapters/s3.js';
import type { Daemon } from '../src/main.js';
import { makeTestEnv, type TestEnv, waitIdle } from './support/daemon.js';
import { sha256, writeFileDeep } from './support/fs.js';
import { getObjectBuffer } from './support/s3.js';

const MB = 1024 * 1024;

describe('upload paths', () => {
  let env: TestEnv | undefined;
  afterEach(async () => {
    await env?.stop();
    env = undefined;
  });

  /** The test environment with `multipartThreshold: 5GiB` (streamed PutObject above 16 MiB). */
  async function streamedEnv() {
    env = await makeTestEnv('upload-path');
    // Completed jobs kept: the test looks at the job's attempts after it ran.
    const config = {
      ...env.config,
      s3: { ...env.config.s3, multipartThreshold: 5 * 1024 ** 3 },
      worker: { ...env.config.worker, keepCompleted: 3_600_000 },
    };
    return env.start({ config, store: makeS3Store(config.s3, env.s3.client) });
  }

  /** Polls until one poll enqueued something (the scheduler's own first poll may hold the lock). */
  async function pollUntilEnqueued(daemon: Daemon, n: number) {
    for (let i = 0; i < 50; i++) {
      const r = await daemon.poller!.pollNow('acme');
      if (r.kind === 'done' && r.enqueued > 0) return expect(r.enqueued).toBe(n);
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error('nothing was enqueued');
  }

  const isPart = (p: string) => /[?&](partNumber|uploadId|uploads)(=|&|$)/.test(p);

  it.each(['abort', 'truncate'] as const)(
    'a 20 MB file goes as one streamed PutObject; the data connection cut (%s) aborts it, the retry uploads it whole',
    async (mode) => {
      const daemon = await streamedEnv();
      const path = 'calls/big.wav';
      const { sha256: hash } = await writeFileDeep(env!.root, path, randomBytes(20 * MB));
      env!.ftp.faults.cutDataAfterBytes = { path: `/${path}`, bytes: 7 * MB, mode };
      await pollUntilEnqueued(daemon, 1);
      const until = Date.now() + 30_000;
      let job = (
        await daemon.syncQueue.getJobs(['delayed', 'failed', 'waiting', 'prioritized', 'active', 'completed'])
      )[0];
      while (!(job && job.attemptsMade >= 1) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        job = (
          await daemon.syncQueue.getJobs([
            'delayed',
            'failed',
            'waiting',
            'prioritized',
            'active',
            'completed',
          ])
        )[0];
      }
      expect(job?.attemptsMade).toBeGreaterThanOrEqual(1);
      // The PutObject was aborted, never answered 2xx, and nothing was marked synced. (s3rver writes
      // a PUT in place, so its partial bytes are visible there until the retry replaces them: a store
      // with atomic PUTs — AWS S3, MinIO — keeps nothing. Hence the 16 MiB default, multipart above.)
      const puts = env!.s3.requests().filter((r) => r.method === 'PUT');
      expect(puts.length).toBeGreaterThanOrEqual(1);
      expect(puts.filter((r) => r.status >= 200 && r.status < 300)).toEqual([]);
      expect(await env!.state.getSynced('acme', path)).toBeUndefined();

      env!.ftp.faults.cutDataAfterBytes = undefined;
      await (await daemon.syncQueue.getJob(job!.id!))?.promote().catch(() => {});
      expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
      expect(sha256(await getObjectBuffer(env!.s3.client, env!.s3.bucket, `acme/${path}`))).toBe(hash);
      expect(env!.s3.requests().filter((r) => isPart(r.path))).toEqual([]);
    },
  );

  it('new files: one listing of their keys and no HEAD before the uploads; a file already in S3 is still checked', async () => {
    const daemon = await streamedEnv();
    for (let i = 0; i < 5; i++) await writeFileDeep(env!.root, `calls/n${i}.wav`, randomBytes(10_000));
    await pollUntilEnqueued(daemon, 5);
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    const first = env!.s3.requests();
    expect(first.filter((r) => r.method === 'HEAD')).toEqual([]);
    expect(first.filter((r) => r.method === 'PUT')).toHaveLength(5);

    // Sync state lost: the listing finds the objects, so each job does its HEAD and uploads nothing.
    await env!.state.clear('acme');
    await daemon.syncQueue.obliterate({ force: true });
    const seen = first.length;
    await pollUntilEnqueued(daemon, 5);
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    const again = env!.s3.requests().slice(seen);
    expect(again.filter((r) => r.method === 'HEAD')).toHaveLength(5);
    expect(again.filter((r) => r.method === 'PUT')).toEqual([]);
    expect((await env!.state.allSynced('acme')).size).toBe(5);
  });
});
