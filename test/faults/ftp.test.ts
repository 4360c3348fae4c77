/**
 * FTP server faults against a real daemon process: the server stopped (and started again on its
 * port) during a listing and during a transfer, the data connection cut at a random byte, and a
 * server that accepts connections and never answers. Each case ends with nothing lost and nothing
 * duplicated (see harness.ts).
 */
import { randomInt } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256, tempDir, writeFileDeep } from '../support/fs.js';
import { startFtpServer } from '../support/ftp-server.js';
import { getObjectBuffer } from '../support/s3.js';
import { type FaultEnv, logsOf, MB, makeFaultEnv, stopGracefully } from './harness.js';

let env: FaultEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('FTP server faults', () => {
  it('the server stopped during a listing and started again: the poll fails, the next ones list everything', async () => {
    env = await makeFaultEnv('ftp-stop-list');
    for (let d = 0; d < 6; d++) {
      for (let i = 0; i < 3; i++) await env.write(`calls/d${d}/call-${i}.wav`, 10_000 + d * 100 + i);
    }
    const e = env;
    let armed = true;
    e.ftp.faults.listDelayMs = 200; // a listing of 7 directories takes about 1.5 s
    e.ftp.faults.onCommand = (directive) => {
      if (directive !== 'LIST' || !armed) return;
      armed = false;
      setTimeout(() => void e.restartFtp(2_000), 300);
    };
    const d = await env.spawn('all');
    await env.waitSynced(60_000);
    await stopGracefully([d]);
    expect(armed).toBe(false);
    expect(logsOf([d], 'poll failed').length).toBeGreaterThan(0);
    await env.verify();
  });

  it('the server stopped during a transfer and started again: the job is retried, resumes after the parts in S3, and the object is written once', async () => {
    env = await makeFaultEnv('ftp-stop-retr');
    await env.write('calls/big.wav', 24 * MB);
    await env.write('calls/small.wav', 40_000);
    env.ftp.faults.slowData = { path: /big\.wav$/, bytesPerSecond: 8 * MB };
    const d = await env.spawn('all');
    // Stop the server once the upload is under way (a part is in S3).
    const until = Date.now() + 30_000;
    while (!env.s3.requests().some((r) => /partNumber=/.test(r.path) && r.status === 200)) {
      if (Date.now() > until) throw new Error('the upload did not start');
      await delay(20);
    }
    await env.restartFtp(1_500);
    await env.waitSynced(60_000);
    await stopGracefully([d]);
    expect(logsOf([d], 'sync failed, will retry').map((l) => l.path)).toContain('calls/big.wav');
    // The interrupted multipart upload was kept and continued (resume): one upload created, none
    // aborted, and the retry read only what came after the parts S3 already held (8 MiB each).
    const creates = env.s3.requests().filter((r) => r.method === 'POST' && /[?&]uploads/.test(r.path));
    expect(creates).toHaveLength(1);
    expect(env.s3.requests().filter((r) => r.method === 'DELETE' && /uploadId=/.test(r.path))).toHaveLength(
      0,
    );
    const [resumed] = logsOf([d], 'transfer resumed');
    expect(Number(resumed?.offset), 'the retry resumed after the part in S3').toBeGreaterThanOrEqual(8 * MB);
    await env.verify(); // whole, intact, no upload left open
  });

  it('the data connection cut at a random byte (abort or clean close): no partial object, the retry uploads it whole', async () => {
    env = await makeFaultEnv('ftp-cut');
    await env.write('calls/multi.wav', 12 * MB + 12_345);
    await env.write('calls/single.wav', 400_000 + 77);
    const sizes: Record<string, number> = {
      '/calls/multi.wav': 12 * MB + 12_345,
      '/calls/single.wav': 400_077,
    };
    const cuts: string[] = [];
    const e = env;
    const seen = new Set<string>();
    e.ftp.faults.onCommand = (directive, arg) => {
      if (directive !== 'RETR' || !arg) return;
      const path = arg.startsWith('/') ? arg : `/${arg}`;
      if (seen.has(path)) {
        e.ftp.faults.cutDataAfterBytes = undefined;
        return;
      }
      seen.add(path);
      const bytes = randomInt(1, sizes[path]!);
      const mode = randomInt(2) ? 'abort' : 'truncate';
      cuts.push(`${path} at ${bytes} (${mode})`);
      e.ftp.faults.cutDataAfterBytes = { path, bytes, mode };
    };
    // One transfer at a time, so each RETR meets its own cut.
    const d = await env.spawn('all', { worker: { concurrency: 1 } });
    await env.waitSynced(60_000);
    await stopGracefully([d]);
    console.log(`ftp-cut: ${cuts.join('; ')}`);
    expect(cuts).toHaveLength(2);
    expect(logsOf([d], 'sync failed, will retry')).toHaveLength(2);
    await env.verify();
  });

  it('a server that accepts the connection and never answers: its polls time out, no worker hangs, another tenant syncs meanwhile', async () => {
    env = await makeFaultEnv('ftp-hang', { faults: { hangAfterConnect: true } });
    await env.write('calls/a.wav', 30_000);
    await env.write('calls/b.wav', 9 * MB);
    const betaDir = await tempDir('faults-beta');
    const beta = await startFtpServer({ root: betaDir.path, users: { beta: 'beta-pw-1' } });
    try {
      const betaFile = await writeFileDeep(betaDir.path, 'calls/beta.wav', 50_000);
      const d = await env.spawn('all', {
        defaults: { sourceTimeout: '2s' },
        tenants: [
          env.acme(),
          {
            org: 'beta',
            ftp: { host: '127.0.0.1', port: beta.port, secure: false, user: 'beta', password: 'beta-pw-1' },
            dirs: ['/'],
          },
        ],
      });
      // The other tenant is not held up by the hanging server.
      await d.waitForLog((l) => l.msg === 'synced' && l.path === 'calls/beta.wav', 30_000);
      const timedOut = await d.waitForLog((l) => l.msg === 'poll failed' && l.org === 'acme', 30_000);
      expect(String(timedOut.err)).toMatch(/Timeout/i);
      expect(await env.head('acme/calls/a.wav')).toBeUndefined();
      // The server comes back: the tenant syncs without a restart.
      env.ftp.faults.hangAfterConnect = false;
      await env.waitSynced(60_000);
      await stopGracefully([d], 15_000);
      await env.verify();
      const body = await getObjectBuffer(env.s3.directClient, env.s3.bucket, 'beta/calls/beta.wav');
      expect(sha256(body)).toBe(betaFile.sha256);
    } finally {
      await beta.stop();
      await betaDir.cleanup();
    }
  });
});
