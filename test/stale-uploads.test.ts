/**
 * Crash safety, the clean-up half: multipart uploads a crashed worker left open are aborted by the
 * worker role (our tenants' prefixes only, older than `s3.staleUploadAge`); a store that cannot list
 * multipart uploads (s3rver answers 501) gets one warning and no more attempts. Uploads recorded in
 * Redis when created are aborted by id once their process is gone, also where listing is 501.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisUploadRecords } from '../src/adapters/redis-uploads.js';
import { makeS3Store } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import type { UploadRecords } from '../src/ports/upload-records.js';
import { startStaleUploadCleanup } from '../src/sync/stale-uploads.js';
import { captureLog } from './support/daemon.js';
import { dyingUpload as startDyingUpload } from './support/dying-upload.js';
import { redisUrl, uniquePrefix } from './support/env.js';
import { type S3TestServer, s3Client, startS3 } from './support/s3.js';

const DAY = 86_400_000;

function s3Config(endpoint: string, bucket = 'calls', multipartUpload: 'stream' | 'buffer' = 'stream') {
  return parseConfig({
    s3: { bucket, endpoint, forcePathStyle: true, multipartUpload },
    vela: { enabled: false },
  }).s3;
}

/** ListMultipartUploads in two pages and AbortMultipartUpload, as S3 answers them. */
function fakeS3(uploads: { key: string; id: string; initiated: Date }[]) {
  const aborted: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.searchParams.has('uploads')) {
      const prefix = url.searchParams.get('prefix') ?? '';
      const marker = url.searchParams.get('key-marker');
      const mine = uploads.filter((u) => u.key.startsWith(prefix));
      const page = marker ? mine.slice(2) : mine.slice(0, 2);
      const truncated = !marker && mine.length > 2;
      const last = page[page.length - 1];
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
          `<Bucket>calls</Bucket><Prefix>${prefix}</Prefix><MaxUploads>2</MaxUploads><IsTruncated>${truncated}</IsTruncated>` +
          (truncated && last
            ? `<NextKeyMarker>${last.key}</NextKeyMarker><NextUploadIdMarker>${last.id}</NextUploadIdMarker>`
            : '') +
          page
            .map(
              (u) =>
                `<Upload><Key>${u.key}</Key><UploadId>${u.id}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`,
            )
            .join('') +
          '</ListMultipartUploadsResult>',
      );
      return;
    }
    if (req.method === 'DELETE' && url.searchParams.has('uploadId')) {
      aborted.push(`${decodeURIComponent(url.pathname)}#${url.searchParams.get('uploadId')}`);
      res.writeHead(204);
      res.end();
      return;
    }
    res.writeHead(400);
    res.end();
  });
  return { server, aborted };
}

describe('stale multipart uploads', () => {
  let fake: ReturnType<typeof fakeS3>;
  let endpoint: string;
  const old = new Date(Date.now() - 2 * DAY);
  const recent = new Date(Date.now() - 60_000);
  beforeAll(async () => {
    fake = fakeS3([
      { key: 'acme/a.wav', id: 'u1', initiated: old },
      { key: 'acme/b.wav', id: 'u2', initiated: recent },
      { key: 'acme/c.wav', id: 'u3', initiated: old },
      { key: 'beta/d.wav', id: 'u4', initiated: old },
    ]);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => fake.server.close(resolve));
  });

  it('aborts the uploads under the prefix older than the age, over every page, and only those', async () => {
    const store = makeS3Store(s3Config(endpoint), s3Client(endpoint));
    expect(await store.abortStaleUploads('acme/', DAY)).toBe(2);
    expect(fake.aborted.sort()).toEqual(['/calls/acme/a.wav#u1', '/calls/acme/c.wav#u3']);
  });

  it("answers 'unsupported' for a store without ListMultipartUploads (s3rver: 501)", async () => {
    const s3 = await startS3();
    try {
      const store = makeS3Store(s3Config(s3.endpoint, s3.bucket), s3.client);
      expect(await store.abortStaleUploads('acme/', DAY)).toBe('unsupported');
    } finally {
      await s3.stop();
    }
  });

  it('the cleanup goes over every tenant prefix; one failing prefix does not stop the others; 501 is warned once', async () => {
    const logs = captureLog();
    const calls: string[] = [];
    let answer: (prefix: string) => number | 'unsupported' = (p) => {
      if (p === 'beta/') throw new Error('AccessDenied');
      return 1;
    };
    const cleanup = startStaleUploadCleanup({
      abortStaleUploads: async (prefix, age) => {
        calls.push(`${prefix}>${age}`);
        return answer(prefix);
      },
      prefixes: async () => ['acme/', 'beta/', 'gamma/'],
      olderThanMs: DAY,
      firstAfterMs: 3_600_000,
      log: logs.log,
    });
    try {
      expect(await cleanup.runOnce()).toBe(2);
      expect(calls).toEqual([`acme/>${DAY}`, `beta/>${DAY}`, `gamma/>${DAY}`]);
      expect(logs.text()).toMatch(/stale upload cleanup failed.*|AccessDenied/);
      answer = () => 'unsupported';
      calls.length = 0;
      expect(await cleanup.runOnce()).toBe(0);
      expect(await cleanup.runOnce()).toBe(0);
      expect(calls).toEqual([`acme/>${DAY}`]); // asked once, then never again
      expect(logs.lines.filter((l) => /does not list multipart uploads/.test(l))).toHaveLength(1);
    } finally {
      cleanup.close();
    }
  });
});

describe('recorded multipart uploads (Redis + s3rver, which answers 501 to ListMultipartUploads)', () => {
  const MiB = 1024 * 1024;
  let s3: S3TestServer;
  let redis: Redis;
  let prefix: string;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  beforeAll(async () => {
    s3 = await startS3();
    redis = new Redis(redisUrl());
  });
  afterAll(async () => {
    redis.disconnect();
    await s3.stop();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const records = (owner: string) => {
    const r = makeRedisUploadRecords(redis, prefix, { leaseMs: 300, owner });
    cleanups.push(() => r.close());
    return r;
  };

  const dyingUpload = (owner: string, key: string, sent: number, version?: string) =>
    startDyingUpload({
      records: records(owner),
      owner,
      s3: s3Config(s3.endpoint, s3.bucket),
      client: s3Client(s3.endpoint),
      key,
      sent,
      ...(version && { version }),
      cleanups,
    });

  it("a dead process's resumable upload (a version recorded) is kept for a retry to resume until it is older than the age", async () => {
    prefix = uniquePrefix('mpu-resumable');
    const dead = await dyingUpload('replica-a', 'acme/resumable.wav', 9 * MiB, `${64 * MiB}:2024-01-01`);
    await dead.die();
    const fresh = records('replica-b');
    const store = makeS3Store(s3Config(s3.endpoint, s3.bucket), s3.client, { records: fresh });
    expect(await store.abortRecorded({ olderThanMs: DAY }), 'kept: a retry may resume it').toBe(0);
    expect((await fresh.list()).map((r) => r.uploadId)).toContain(dead.uploadId);
    expect(await store.abortRecorded({ olderThanMs: 0 }), 'old: aborted by id').toBe(1);
    expect((await fresh.list()).map((r) => r.uploadId)).not.toContain(dead.uploadId);
  });

  it("a dead process's upload is aborted by id by a fresh process's start-up cleanup; a live one's is not", async () => {
    prefix = uniquePrefix('mpu');
    const dead = await dyingUpload('replica-a', 'acme/big.wav', MiB);
    const fresh = records('replica-b');
    const store = makeS3Store(s3Config(s3.endpoint, s3.bucket), s3.client, { records: fresh });
    // Still alive (its lease is renewed): left alone.
    expect(await store.abortRecorded({ olderThanMs: DAY })).toBe(0);
    await dead.die();
    const logs = captureLog();
    const cleanup = startStaleUploadCleanup({
      abortStaleUploads: (p, age) => store.abortStaleUploads(p, age),
      abortRecorded: (age) => store.abortRecorded({ olderThanMs: age }),
      prefixes: async () => ['acme/'],
      olderThanMs: DAY,
      firstAfterMs: 3_600_000,
      log: logs.log,
    });
    try {
      const before = s3.requests().length;
      expect(await cleanup.runOnce()).toBe(1);
      const seen = s3.requests().slice(before);
      expect(
        seen.filter((r) => r.method === 'GET' && /[?&]uploads/.test(r.path)).map((r) => r.status),
      ).toEqual([501]);
      expect(
        seen.filter(
          (r) => r.method === 'DELETE' && r.path.includes(`uploadId=${encodeURIComponent(dead.uploadId)}`),
        ),
      ).toHaveLength(1);
      expect(await fresh.list()).toEqual([]);
      expect(logs.text()).toMatch(/aborted multipart uploads left open by a process that is gone/);
    } finally {
      cleanup.close();
    }
  });

  it('on shutdown a process aborts its own uploads still open, and only those', async () => {
    prefix = uniquePrefix('mpu');
    const mine = await dyingUpload('replica-g', 'acme/mine.wav', MiB);
    const other = await dyingUpload('replica-h', 'acme/other.wav', MiB);
    const before = s3.requests().length;
    expect(await mine.store.abortRecorded({ mine: true })).toBe(1);
    const deletes = s3
      .requests()
      .slice(before)
      .filter((r) => r.method === 'DELETE');
    expect(deletes.map((r) => r.path)).toEqual([expect.stringContaining(`uploadId=${mine.uploadId}`)]);
    expect((await mine.records.list()).map((r) => r.uploadId)).toEqual([other.uploadId]);
  });

  it.each(['stream', 'buffer'] as const)('a completed upload (%s parts) leaves no record', async (mode) => {
    prefix = uniquePrefix('mpu');
    const rec: UploadRecords = records('replica-c');
    const calls: string[] = [];
    const spy: UploadRecords = {
      ...rec,
      owner: rec.owner,
      add(r) {
        calls.push('add');
        return rec.add(r);
      },
      progress(id, n) {
        calls.push(`progress ${n}`);
        return rec.progress(id, n);
      },
      remove(id) {
        calls.push('remove');
        return rec.remove(id);
      },
    };
    const store = makeS3Store(s3Config(s3.endpoint, s3.bucket, mode), s3.client, { records: spy });
    const size = 9 * MiB;
    const before = s3.requests().length;
    await store.put(`acme/${mode}.wav`, Readable.from([Buffer.alloc(size, 1)]), { size, metadata: {} });
    // It was a multipart upload (so it was recorded), and nothing is left of it.
    expect(
      s3
        .requests()
        .slice(before)
        .some((r) => r.method === 'POST' && /[?&]uploads/.test(r.path)),
    ).toBe(true);
    expect(calls.sort()).toEqual(['add', `progress ${MiB}`, `progress ${8 * MiB}`, 'remove']);
    expect(await rec.list()).toEqual([]);
    expect(await redis.exists(`${prefix}:uploads`, `${prefix}:uploads:bytes`)).toBe(0);
  });

  it('a store that refuses to abort (405): warned once with the count and bytes left, records dropped', async () => {
    prefix = uniquePrefix('mpu');
    const one = await dyingUpload('replica-d', 'acme/one.wav', 9 * MiB); // one 8 MiB part confirmed
    const two = await dyingUpload('replica-e', 'acme/two.wav', MiB);
    await one.die();
    const logs = captureLog();
    const fresh = records('replica-f');
    const store = makeS3Store(s3Config(s3.endpoint, s3.bucket), s3.client, { records: fresh, log: logs.log });
    s3.proxy.failNext(1, 405, { code: 'MethodNotAllowed' });
    expect(await store.abortRecorded({ olderThanMs: DAY })).toBe(0);
    await two.die();
    s3.proxy.failNext(1, 405, { code: 'MethodNotAllowed' });
    expect(await store.abortRecorded({ olderThanMs: DAY })).toBe(0);
    const warned = logs.lines.filter((l) => /refuses to abort multipart uploads/.test(l));
    expect(warned).toHaveLength(1);
    expect(JSON.parse(warned[0] ?? '{}')).toMatchObject({ uploads: 1, bytesLeft: 8 * MiB });
    expect(await fresh.list()).toEqual([]);
  });
});
