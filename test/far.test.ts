/**
 * Far servers, the fast cases (issue: far servers). vsftpd runs in a network namespace behind a link
 * shaped by `tc tbf` (test/support/slow-link.ts); the long cases are in test/faults/far.test.ts.
 * Also the per-tenant `maxBandwidth`: one budget shared by replicas through Redis.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRedisBandwidth } from '../src/adapters/redis-bandwidth.js';
import { parseConfig } from '../src/config.js';
import type { Daemon } from '../src/main.js';
import { makeThrottle } from '../src/sync/throttle.js';
import { makeTestEnv, type TestEnv, waitIdle } from './support/daemon.js';
import { redisUrl, uniquePrefix } from './support/env.js';
import { sha256, writeFileDeep } from './support/fs.js';
import { getObjectBuffer } from './support/s3.js';
import { makeSlowLink, requireSlowLink, type SlowLink } from './support/slow-link.js';
import { hasVsftpd, startVsftpd, type VsftpdServer } from './support/vsftpd.js';

const MiB = 1024 * 1024;
const noSlowLink = await requireSlowLink();

let env: TestEnv | undefined;
let link: SlowLink | undefined;
let vsftpd: VsftpdServer | undefined;
afterEach(async () => {
  await vsftpd?.stop();
  await link?.close();
  await env?.stop();
  env = link = vsftpd = undefined;
});

/** `synced` log lines of a tenant: when each transfer started and ended (ms since epoch). */
function transfers(e: TestEnv, org: string) {
  return e.logs.lines
    .map((l) => JSON.parse(l) as { msg: string; org?: string; time: string; ms?: number; bytes?: number })
    .filter((l) => l.msg === 'synced' && l.org === org)
    .map((l) => ({ end: Date.parse(l.time), start: Date.parse(l.time) - (l.ms ?? 0), bytes: l.bytes ?? 0 }));
}

/** Bytes per second over the span from the first transfer's start to the last one's end. */
function spanRate(t: ReturnType<typeof transfers>) {
  const span = Math.max(...t.map((x) => x.end)) - Math.min(...t.map((x) => x.start));
  return {
    bytes: t.reduce((n, x) => n + x.bytes, 0),
    ms: span,
    rate: t.reduce((n, x) => n + x.bytes, 0) / (span / 1000),
  };
}

describe.skipIf(!!noSlowLink || !hasVsftpd())('vsftpd behind a 1 MiB/s link', () => {
  it('a 6 MiB recording that outlasts every timeout (vsftpd idle 2 s, sourceTimeout, s3.idleTimeout, job lock) syncs whole, once, unstalled; the session vsftpd closed while idle is not reused', async () => {
    env = await makeTestEnv('far-slow', {
      config: {
        defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: 1, sourceTimeout: '2s' },
        // Completed jobs kept: the test reads attempts and stalls off them.
        worker: { concurrency: 2, lockDuration: '3s', stalledInterval: '1s', keepCompleted: '1h' },
      },
    });
    const big = await writeFileDeep(env.root, 'calls/long.wav', randomBytes(6 * MiB));
    link = await makeSlowLink({ bytesPerSecond: MiB });
    vsftpd = await startVsftpd({
      root: env.root,
      netns: link.netns,
      listenAddress: link.nsAddress,
      idleSessionTimeout: 2,
      dataConnectionTimeout: 3,
    });
    const [tenant] = env.config.tenants;
    const config = {
      ...env.config,
      s3: { ...env.config.s3, idleTimeout: 2000 },
      tenants: [
        {
          ...tenant!,
          ftp: {
            ...tenant!.ftp!,
            host: vsftpd.host,
            port: vsftpd.port,
            user: vsftpd.user,
            password: vsftpd.password,
          },
        },
      ],
    };
    // A pool that keeps idle sessions for a minute: the one vsftpd closes after 2 s idle stays in it.
    const daemon: Daemon = await env.start({ config, poolIdleMs: 60_000 });
    const t0 = Date.now();
    await daemon.poller!.pollNow('acme'); // a version is queued once two polls saw it unchanged
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ kind: 'done', enqueued: 1 });
    expect((await waitIdle(daemon.syncQueue, 40_000)).failed).toBe(0);
    const took = Date.now() - t0;
    expect(took, 'the link was slow').toBeGreaterThan(5_000);
    expect(sha256(await getObjectBuffer(env.s3.client, env.s3.bucket, 'acme/calls/long.wav'))).toBe(
      big.sha256,
    );
    const [job] = await daemon.syncQueue.getJobs(['completed']);
    expect(job!.attemptsStarted, 'started once: never taken as stalled').toBe(1);
    expect(job!.stalledCounter).toBe(0);
    expect(env.logs.text()).not.toMatch(/"level":50/);

    // Idle longer than vsftpd's idle_session_timeout: the pooled session is closed by the server.
    await delay(3_000);
    const small = await writeFileDeep(env.root, 'calls/after-idle.wav', randomBytes(300_000));
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ kind: 'done', enqueued: 1 });
    expect((await waitIdle(daemon.syncQueue, 30_000)).failed).toBe(0);
    expect(sha256(await getObjectBuffer(env.s3.client, env.s3.bucket, 'acme/calls/after-idle.wav'))).toBe(
      small.sha256,
    );
    const jobs = await daemon.syncQueue.getJobs(['completed']);
    expect(jobs.map((j) => j.attemptsMade + (j.stalledCounter ?? 0)).every((n) => n <= 1)).toBe(true);
    const writes = env.s3
      .requests()
      .filter((r) => r.status === 200 && r.method === 'PUT' && !/partNumber=/.test(r.path));
    const completes = env.s3
      .requests()
      .filter((r) => r.status === 200 && r.method === 'POST' && /uploadId=/.test(r.path));
    expect(writes.length + completes.length, 'one whole-object write per file').toBe(2);
    console.info(`far: 6 MiB over 1 MiB/s synced in ${took} ms`);
  });

  it('maxBandwidth 256KiB/s on a 1 MiB/s link: the tenant reads at the cap (within 10 %)', async () => {
    env = await makeTestEnv('far-cap-link', {
      config: { defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: 2 } },
    });
    for (let i = 0; i < 3; i++) await writeFileDeep(env.root, `calls/c${i}.wav`, randomBytes(512 * 1024));
    link = await makeSlowLink({ bytesPerSecond: MiB });
    vsftpd = await startVsftpd({ root: env.root, netns: link.netns, listenAddress: link.nsAddress });
    const [tenant] = env.config.tenants;
    const config = {
      ...env.config,
      tenants: [
        {
          ...tenant!,
          maxBandwidth: 256 * 1024,
          ftp: {
            ...tenant!.ftp!,
            host: vsftpd.host,
            port: vsftpd.port,
            user: vsftpd.user,
            password: vsftpd.password,
          },
        },
      ],
    };
    const daemon = await env.start({ config });
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ kind: 'done', enqueued: 3 });
    expect((await waitIdle(daemon.syncQueue, 30_000)).failed).toBe(0);
    const r = spanRate(transfers(env, 'acme'));
    console.info(`far: cap 256 KiB/s on a shaped link: ${Math.round(r.rate / 1024)} KiB/s over ${r.ms} ms`);
    expect(r.bytes).toBe(3 * 512 * 1024);
    expect(r.rate / (256 * 1024)).toBeGreaterThan(0.9);
    expect(r.rate / (256 * 1024)).toBeLessThan(1.1);
  });
});

describe('maxBandwidth', () => {
  it('is a rate like 10MiB/s; anything else is refused naming the field', () => {
    const base = {
      s3: { bucket: 'b' },
      vela: { enabled: false },
      tenants: [{ org: 'acme', ftp: { host: 'h', secure: false }, maxBandwidth: '10MiB/s' }],
    };
    expect(parseConfig(base, {}).tenants[0]!.maxBandwidth).toBe(10 * MiB);
    const bad = { ...base, tenants: [{ ...base.tenants[0]!, maxBandwidth: 'fast' }] };
    expect(() => parseConfig(bad, {})).toThrow(/tenants\[0\]\.maxBandwidth.*expected a rate like 10MiB\/s/s);
    const tiny = { ...base, tenants: [{ ...base.tenants[0]!, maxBandwidth: '1KB/s' }] };
    expect(() => parseConfig(tiny, {})).toThrow(/maxBandwidth.*at least 16KiB\/s/s);
  });

  it('two replicas (two Redis connections) reading as fast as they can share one budget: within 10 % of the cap', async () => {
    const prefix = uniquePrefix('far-bucket');
    const a = new Redis(redisUrl());
    const b = new Redis(redisUrl());
    try {
      const cap = 8 * MiB;
      const read = { acme: 0, other: 0 };
      const until = Date.now() + 2_000;
      const reader = async (redis: Redis, org: 'acme' | 'other', rate: number) => {
        const take = makeThrottle({ limiter: makeRedisBandwidth(redis, prefix), org, bytesPerSecond: rate });
        while (Date.now() < until) {
          await take(64 * 1024);
          if (Date.now() < until) read[org] += 64 * 1024;
        }
      };
      // Two transfers in each replica for acme; another tenant with a cap 4× higher alongside.
      await Promise.all([
        reader(a, 'acme', cap),
        reader(a, 'acme', cap),
        reader(b, 'acme', cap),
        reader(b, 'acme', cap),
        reader(b, 'other', 4 * cap),
      ]);
      const acmeRate = read.acme / 2;
      console.info(
        `far: shared bucket: acme ${(acmeRate / MiB).toFixed(2)} MiB/s of 8, other ${(read.other / 2 / MiB).toFixed(2)} MiB/s of 32`,
      );
      expect(acmeRate / cap).toBeGreaterThan(0.9);
      expect(acmeRate / cap).toBeLessThan(1.1);
      expect(read.other / 2 / (4 * cap), 'the other tenant has its own budget').toBeGreaterThan(0.9);
    } finally {
      const keys = await a.keys(`${prefix}*`);
      if (keys.length) await a.del(...keys);
      a.disconnect();
      b.disconnect();
    }
  });

  it('on loopback: a capped tenant reads at its cap (within 10 %) while an uncapped one is not held back', async () => {
    env = await makeTestEnv('far-cap', {
      moreTenants: ['beta'],
      tenant: { maxBandwidth: '1MiB/s' },
      config: {
        defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: 2 },
        worker: { concurrency: 4 },
      },
    });
    const hashes = new Map<string, string>();
    // Above multipartThreshold (8 MiB): the multipart upload streams while the source is read, so the
    // transfer's time is the read's time (a buffered file adds its PutObject after it).
    for (const org of ['acme', 'beta']) {
      const file = await writeFileDeep(env.root, `${org}/big.wav`, randomBytes(9 * MiB));
      hashes.set(`${org}/${org}/big.wav`, file.sha256);
    }
    const daemon = await env.start();
    await Promise.all([daemon.poller!.pollNow('acme'), daemon.poller!.pollNow('beta')]);
    await Promise.all([daemon.poller!.pollNow('acme'), daemon.poller!.pollNow('beta')]);
    expect((await waitIdle(daemon.syncQueue, 30_000)).failed).toBe(0);
    for (const [key, hash] of hashes) {
      expect(sha256(await getObjectBuffer(env.s3.client, env.s3.bucket, key)), key).toBe(hash);
    }
    const capped = spanRate(transfers(env, 'acme'));
    const other = spanRate(transfers(env, 'beta'));
    console.info(
      `far: cap 1 MiB/s on loopback: ${(capped.rate / MiB).toFixed(2)} MiB/s over ${capped.ms} ms; the uncapped tenant alongside: ${(other.rate / MiB).toFixed(2)} MiB/s`,
    );
    expect(capped.bytes).toBe(9 * MiB);
    expect(capped.rate / MiB).toBeGreaterThan(0.9);
    expect(capped.rate / MiB).toBeLessThan(1.1);
    // A busy 2-core machine moves a few MiB/s on loopback: the other tenant only has to be clearly
    // above the cap.
    expect(other.rate, 'the uncapped tenant is not held to the cap').toBeGreaterThan(2 * MiB);
  });
});
