import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeS3Store } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { type AdminHttp, makeTokenCheck, startAdminHttp } from '../src/http/server.js';
import type { Daemon } from '../src/main.js';
import { type Metrics, makeMetrics } from '../src/metrics.js';
import { BATCH_QUEUE } from '../src/queue/batch-jobs.js';
import { POLL_QUEUE, SYNC_QUEUE } from '../src/queue/jobs.js';
import { startVelaStandin, type VelaStandin } from '../src/standin/vela-standin.js';
import { captureLog, makeTestEnv, SECRETS, type TestEnv, waitIdle } from './support/daemon.js';
import { redisUrl, uniquePrefix } from './support/env.js';
import { writeFileDeep } from './support/fs.js';
import { freePort } from './support/ports.js';
import { type S3TestServer, s3Client, startS3 } from './support/s3.js';

const TOKEN = `admin-${randomBytes(8).toString('hex')}`;
const bearer = (t = TOKEN) => ({ authorization: `Bearer ${t}` });
const basic = (password: string, user = 'ops') => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

function s3Config(endpoint: string, bucket: string) {
  return parseConfig({ s3: { bucket, endpoint, forcePathStyle: true }, vela: { enabled: false } }).s3;
}

/** The admin server against real Redis, real BullMQ queues and a real S3 server. */
describe('admin HTTP', () => {
  const prefix = uniquePrefix('http');
  let redis: Redis;
  let s3: S3TestServer;
  let queues: Queue[];
  let metrics: Metrics;
  let http: AdminHttp;
  const logs = captureLog();

  beforeAll(async () => {
    redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    s3 = await startS3();
    queues = [SYNC_QUEUE, POLL_QUEUE].map((name) => new Queue(name, { connection: redis, prefix }));
    await queues[0]!.add('sync', { org: 'acme', path: 'a.wav', size: 1, mtime: 'x' }, { jobId: 'a' });
    await queues[0]!.add(
      'sync',
      { org: 'acme', path: 'b.wav', size: 1, mtime: 'x' },
      { jobId: 'b', delay: 60_000 },
    );
    await redis.hset(`${prefix}:{acme}:parked`, 'b.wav', '{}');
    const store = makeS3Store(s3Config(s3.endpoint, s3.bucket), s3Client(s3.endpoint));
    metrics = makeMetrics({
      sources: {
        orgs: async () => ['acme', 'globex'],
        parked: (org) => redis.hlen(`${prefix}:{${org}}:parked`),
        health: async (org) => (org === 'acme' ? 'ok' : 'unknown'),
        connectionsInUse: (org) => (org === 'acme' ? 2 : 0),
        queues: () => queues,
      },
    });
    http = await startAdminHttp({
      port: 0,
      token: TOKEN,
      metrics,
      checks: { redis: async () => void (await redis.ping()), s3: () => store.ping() },
      queues,
      log: logs.log,
    });
  });

  afterAll(async () => {
    await http?.close();
    await Promise.allSettled((queues ?? []).map((q) => q.obliterate({ force: true })));
    await Promise.allSettled((queues ?? []).map((q) => q.close()));
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await s3?.stop();
  });

  it('listens on 127.0.0.1 and answers /healthz with 200, no token needed', async () => {
    expect(http.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${http.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok\n');
    expect((await fetch(`${http.url}/nope`)).status).toBe(404);
    expect((await fetch(`${http.url}/healthz`, { method: 'POST' })).status).toBe(405);
  });

  it('answers /readyz with 200 when Redis answers PING and the S3 bucket is reachable', async () => {
    const res = await fetch(`${http.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', checks: { redis: 'ok', s3: 'ok' } });
  });

  it('answers /readyz with 503 naming s3 while the S3 server fails, and 200 again after', async () => {
    s3.proxy.failFor(60_000, 503);
    try {
      const res = await fetch(`${http.url}/readyz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { status: string; failed: string[]; checks: Record<string, string> };
      expect(body).toMatchObject({ status: 'not ready', failed: ['s3'], checks: { redis: 'ok' } });
      expect(body.checks.s3).not.toBe('ok');
    } finally {
      s3.proxy.reset();
    }
    expect((await fetch(`${http.url}/readyz`)).status).toBe(200);
    expect(logs.text()).toMatch(/readiness check failed/);
  });

  it('answers /readyz with 503 when nothing listens at the S3 endpoint or a check hangs', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const store = makeS3Store(s3Config(closed, 'calls'), s3Client(closed));
    const other = await startAdminHttp({
      port: 0,
      metrics,
      checks: {
        redis: async () => void (await redis.ping()),
        s3: () => store.ping(),
        hangs: () => new Promise(() => {}),
      },
      queues,
      log: captureLog().log,
      checkTimeoutMs: 1000,
    });
    try {
      const res = await fetch(`${other.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        status: 'not ready',
        failed: ['s3', 'hangs'],
        checks: { redis: 'ok', s3: 'ECONNREFUSED', hangs: 'timeout' },
      });
    } finally {
      await other.close();
    }
  });

  it('serves /metrics only with the token: as a bearer token or as the basic-auth password', async () => {
    const none = await fetch(`${http.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/Basic realm="ftp-sync"/);
    expect(await none.text()).toBe('unauthorized\n');
    expect((await fetch(`${http.url}/metrics`, { headers: bearer('wrong') })).status).toBe(401);
    expect((await fetch(`${http.url}/metrics`, { headers: basic('wrong') })).status).toBe(401);
    expect((await fetch(`${http.url}/metrics`, { headers: basic(TOKEN, TOKEN) })).status).toBe(200);
    expect((await fetch(`${http.url}/metrics`, { headers: basic(TOKEN) })).status).toBe(200);
    const ok = await fetch(`${http.url}/metrics`, { headers: bearer() });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('reports recorded outcomes, polls, Vela calls and the scrape-time gauges in /metrics', async () => {
    metrics.recordOutcome('acme', 'uploaded', 2048, 1500);
    metrics.recordOutcome('acme', 'uploaded', 1024, 500);
    metrics.recordOutcome('acme', 'already-in-s3', 0, 10);
    metrics.recordOutcome('acme', 'superseded', 0, 10);
    metrics.recordOutcome('acme', 'retry', 0, 10);
    metrics.recordOutcome('acme', 'parked', 0, 10);
    metrics.recordTenantError('globex');
    metrics.recordPoll('acme', { kind: 'done', listed: 42, ms: 250 });
    metrics.recordPoll('acme', { kind: 'failed' });
    metrics.recordVelaCall({ outcome: 'within', ms: 20 });
    const text = await (await fetch(`${http.url}/metrics`, { headers: bearer() })).text();

    expect(text).toContain('ftpsync_files_synced_total{org="acme",outcome="uploaded"} 2');
    expect(text).toContain('ftpsync_files_synced_total{org="acme",outcome="already-in-s3"} 1');
    expect(text).toContain('ftpsync_files_synced_total{org="acme",outcome="superseded"} 1');
    expect(text).not.toContain('outcome="parked"');
    expect(text).toContain('ftpsync_bytes_synced_total{org="acme"} 3072');
    expect(text).toContain('ftpsync_sync_failures_total{org="acme",reason="retry"} 1');
    expect(text).toContain('ftpsync_sync_failures_total{org="globex",reason="tenant"} 1');
    expect(text).toContain('ftpsync_transfer_duration_seconds_count 2');
    expect(text).toContain('ftpsync_transfer_size_bytes_sum 3072');
    expect(text).toContain('ftpsync_poll_duration_seconds_count{org="acme"} 1');
    expect(text).toContain('ftpsync_poll_listing_size{org="acme"} 42');
    expect(text).toContain('ftpsync_polls_total{org="acme",outcome="failed"} 1');
    expect(text).toContain('ftpsync_vela_request_duration_seconds_count{outcome="within"} 1');
    // Read at scrape time: Redis (parked, health), BullMQ (job counts), the pool (connections).
    expect(text).toContain('ftpsync_parked_files{org="acme"} 1');
    expect(text).toContain('ftpsync_parked_files{org="globex"} 0');
    expect(text).toContain('ftpsync_tenant_healthy{org="acme"} 1');
    expect(text).not.toContain('ftpsync_tenant_healthy{org="globex"}'); // unknown: no series
    expect(text).toContain('ftpsync_queue_jobs{queue="sync",state="waiting"} 1');
    expect(text).toContain('ftpsync_queue_jobs{queue="sync",state="delayed"} 1');
    expect(text).toContain('ftpsync_queue_jobs{queue="poll",state="waiting"} 0');
    expect(text).toContain('ftpsync_ftp_connections_in_use{org="acme"} 2');
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).not.toContain(TOKEN);
  });

  it('serves Bull Board at /admin/queues only with the token, listing the queues', async () => {
    const page = `${http.url}/admin/queues`;
    const none = await fetch(page);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect((await fetch(`${page}/api/queues`)).status).toBe(401);
    expect((await fetch(`${page}/static/images/logo.svg`)).status).toBe(401);
    expect((await fetch(page, { headers: bearer('nope') })).status).toBe(401);

    const res = await fetch(page, { headers: basic(TOKEN) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('<base href="/admin/queues/"');
    expect(html).toContain('<title>ftp-sync</title>');
    expect(html).not.toContain(TOKEN);
    // The page is a single-page app: it loads its script, then lists the queues through its API.
    const script = /src="(static\/js\/main\.[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const js = await fetch(`${page}/${script}`, { headers: basic(TOKEN) });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    await js.arrayBuffer();

    const api = await fetch(`${page}/api/queues`, { headers: bearer() });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string; counts: Record<string, number> }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual([POLL_QUEUE, SYNC_QUEUE].sort());
    expect(body.queues.find((q) => q.name === SYNC_QUEUE)?.counts).toMatchObject({ waiting: 1, delayed: 1 });
    // A deep link of the app is served the same page.
    expect((await fetch(`${page}/queue/${SYNC_QUEUE}`, { headers: bearer() })).status).toBe(200);
  });

  it('turns the dashboard off without a token, says so in the log, and leaves /metrics open', async () => {
    const log = captureLog();
    const open = await startAdminHttp({ port: 0, metrics, checks: {}, queues, log: log.log });
    try {
      const res = await fetch(`${open.url}/admin/queues`, { headers: bearer() });
      expect(res.status).toBe(404);
      expect(await res.text()).toMatch(/dashboard off/);
      expect((await fetch(`${open.url}/metrics`)).status).toBe(200);
      expect((await fetch(`${open.url}/readyz`)).status).toBe(200);
      expect(log.text()).toMatch(
        /http\.token is not set: the queue dashboard \(\/admin\/queues\) and \/status are off/,
      );
    } finally {
      await open.close();
    }
  });

  it('answers a scrape when a source fails or Redis hangs, and counts the failed reads', async () => {
    const slow = makeMetrics({
      processMetrics: false,
      scrapeTimeoutMs: 300,
      sources: {
        orgs: async () => ['acme'],
        parked: async () => {
          throw new Error('boom');
        },
        health: () => new Promise(() => {}),
        queues: () => [{ name: 'x', getJobCounts: () => Promise.reject(new Error('down')) }],
      },
    });
    slow.recordOutcome('acme', 'uploaded', Number.NaN, -1); // odd values must not throw either
    slow.recordOutcome('acme', 'something new', 1, 1);
    const started = Date.now();
    const text = await slow.render();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(text).toContain('ftpsync_scrape_errors_total{source="timeout"}');
    expect(text).toContain('ftpsync_scrape_errors_total{source="queues"} 1');
    expect(text).not.toMatch(/^ftpsync_parked_files\{/m);
  });

  it('accepts the token only exactly', () => {
    const check = makeTokenCheck('s3cr3t');
    expect(check('Bearer s3cr3t')).toBe(true);
    expect(check('bearer s3cr3t')).toBe(true);
    expect(check('Bearer s3cr3t ')).toBe(true); // trailing whitespace of the header is not the token's
    expect(check('Bearer s3cr3')).toBe(false);
    expect(check('Bearer s3cr3tt')).toBe(false);
    expect(check(basic('s3cr3t').authorization)).toBe(true);
    expect(check(basic('s3cr3t:x').authorization)).toBe(false);
    expect(check(`Basic ${Buffer.from('s3cr3t').toString('base64')}`)).toBe(false); // no colon
    expect(check('Token s3cr3t')).toBe(false);
    expect(check(undefined)).toBe(false);
    expect(check('')).toBe(false);
  });
});

/** The wiring in startDaemon: side channels reach the metrics, the admin server starts and stops. */
describe('admin HTTP of a running daemon', () => {
  let env: TestEnv;
  let vela: VelaStandin;
  let daemon: Daemon;

  beforeAll(async () => {
    vela = await startVelaStandin({ token: SECRETS.velaToken, allocations: { acme: { minutes: 500 } } });
    env = await makeTestEnv('http-daemon', {
      tenant: { metadata: { defaultEmail: 'agent@acme.example' } },
      config: {
        vela: { url: vela.url, token: SECRETS.velaToken },
        http: { enabled: true, port: await freePort(), token: TOKEN },
        // Completed jobs kept: the test reads their count in /metrics.
        worker: { concurrency: 4, keepCompleted: '1h' },
      },
    });
    await writeFileDeep(env.root, 'calls/one.wav', randomBytes(5000));
    await writeFileDeep(env.root, 'calls/two.mp3', randomBytes(7000));
    daemon = await env.start();
  }, 60_000);

  afterAll(async () => {
    await env?.stop();
    await vela?.close();
  });

  it('reports the synced files, Vela calls and connections, and never a secret', async () => {
    expect(daemon.http?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const url = daemon.http!.url;
    // A file is enqueued on the second poll that sees it; the scheduler's own first poll may be running.
    const deadline = Date.now() + 30_000;
    let counts = await waitIdle(daemon.syncQueue);
    while (counts.completed! < 2 && Date.now() < deadline) {
      await daemon.poller!.pollNow('acme');
      counts = await waitIdle(daemon.syncQueue);
      await delay(50);
    }
    expect(counts, env.logs.text()).toMatchObject({ completed: 2, failed: 0 });

    const ready = await fetch(`${url}/readyz`);
    expect(ready.status, await ready.text()).toBe(200);
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    const text = await (await fetch(`${url}/metrics`, { headers: bearer() })).text();
    expect(text).toContain('ftpsync_files_synced_total{org="acme",outcome="uploaded"} 2');
    expect(text).toContain('ftpsync_bytes_synced_total{org="acme"} 12000');
    expect(text).toContain('ftpsync_vela_request_duration_seconds_count{outcome="within"} 2');
    expect(text).toContain('ftpsync_queue_jobs{queue="sync",state="completed"} 2');
    expect(text).toMatch(/ftpsync_queue_jobs\{queue="poll",state="\w+"\}/);
    expect(text).toMatch(/ftpsync_ftp_connections_in_use\{org="acme"\} \d/);
    expect(text).toContain('ftpsync_parked_files{org="acme"} 0');
    expect(text).toContain('ftpsync_tenant_healthy{org="acme"} 1');
    for (const secret of [TOKEN, SECRETS.ftpPassword, SECRETS.velaToken]) expect(text).not.toContain(secret);

    const api = await fetch(`${url}/admin/queues/api/queues`, { headers: basic(TOKEN) });
    const body = (await api.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual([BATCH_QUEUE, POLL_QUEUE, SYNC_QUEUE].sort());
    const dashboard = JSON.stringify(body);
    for (const secret of [TOKEN, SECRETS.ftpPassword, SECRETS.velaToken])
      expect(dashboard).not.toContain(secret);
  });

  it('closes the admin server with the daemon', async () => {
    const url = daemon.http!.url;
    await daemon.close();
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});

describe('admin HTTP start failure', () => {
  it('fails the daemon start, before any role runs, when the admin port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    const env = await makeTestEnv('http-port-taken', { config: { http: { enabled: true, port } } });
    try {
      await expect(env.start()).rejects.toThrow(/EADDRINUSE/);
      expect(env.logs.text()).not.toMatch(/ftp-sync started/);
    } finally {
      await env.stop();
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
