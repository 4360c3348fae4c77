/**
 * Crash safety's clean-up half against a store that lists multipart uploads (a RADOS Gateway; s3rver
 * answers 501, see test/stale-uploads.test.ts): uploads recorded in Redis are aborted by id once
 * their process is gone or on its own shutdown, and the store's own listing confirms what is left
 * open — the dead process's upload is gone, a live one's is still there.
 */
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisUploadRecords } from '../../src/adapters/redis-uploads.js';
import { makeS3Client, makeS3Store } from '../../src/adapters/s3.js';
import { parseConfig } from '../../src/config.js';
import { startStaleUploadCleanup } from '../../src/sync/stale-uploads.js';
import { captureLog } from '../support/daemon.js';
import { dyingUpload as startDyingUpload } from '../support/dying-upload.js';
import { redisUrl, uniquePrefix } from '../support/env.js';
import { haveRgw, type Rgw, startRgw } from '../support/rgw.js';
import { type S3TestServer, startS3 } from '../support/s3.js';
import { waitFor } from '../support/wait.js';

const DAY = 86_400_000;
const MiB = 1024 * 1024;

describe.skipIf(!haveRgw())('recorded multipart uploads on a RADOS Gateway (Redis + RGW)', () => {
  let rgw: Rgw;
  let s3: S3TestServer;
  let redis: Redis;
  let prefix: string;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  beforeAll(async () => {
    rgw = await startRgw();
    s3 = await startS3({ rgw });
    redis = new Redis(redisUrl());
  }, 120_000);
  afterAll(async () => {
    redis?.disconnect();
    await s3?.stop();
    await rgw?.stop();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const config = (multipartUpload: 'stream' | 'buffer' = 'stream') =>
    parseConfig({
      s3: { bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true, multipartUpload },
      vela: { enabled: false },
    }).s3;
  const records = (owner: string) => {
    const r = makeRedisUploadRecords(redis, prefix, { leaseMs: 300, owner });
    cleanups.push(() => r.close());
    return r;
  };
  /** Keys and ids of the uploads the store lists as open under `acme/`. */
  const listedOpen = async () =>
    (
      (await s3.directClient.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: 'acme/' })))
        .Uploads ?? []
    ).map((u) => `${u.Key}#${u.UploadId}`);

  const dyingUpload = (owner: string, key: string, sent: number) =>
    startDyingUpload({
      records: records(owner),
      owner,
      s3: config(),
      client: makeS3Client(config(), { credentials: s3.credentials }),
      key,
      sent,
      cleanups,
    });

  it("a dead process's upload is aborted by id and gone from the store; a live one's stays open", async () => {
    prefix = uniquePrefix('rgw-mpu');
    const dead = await dyingUpload('replica-a', 'acme/dead.wav', 9 * MiB); // one 8 MiB part stored
    const live = await dyingUpload('replica-b', 'acme/live.wav', MiB);
    expect((await listedOpen()).sort()).toEqual(
      [`acme/dead.wav#${dead.uploadId}`, `acme/live.wav#${live.uploadId}`].sort(),
    );
    await dead.die();
    const fresh = records('replica-c');
    const cfg = config();
    const store = makeS3Store(cfg, makeS3Client(cfg, { credentials: s3.credentials }), { records: fresh });
    cleanups.push(() => store.client.destroy());
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
      expect(await cleanup.runOnce()).toBe(1);
    } finally {
      cleanup.close();
    }
    expect(await listedOpen()).toEqual([`acme/live.wav#${live.uploadId}`]);
    expect((await fresh.list()).map((r) => r.uploadId)).toEqual([live.uploadId]);
    expect(logs.text()).toMatch(/aborted multipart uploads left open by a process that is gone/);
    // The listing worked: no "does not list" warning, unlike on s3rver.
    expect(logs.text()).not.toMatch(/does not list multipart uploads/);
  });

  it('on shutdown a process aborts its own uploads still open, and only those', async () => {
    prefix = uniquePrefix('rgw-mpu');
    const mine = await dyingUpload('replica-g', 'acme/mine.wav', MiB);
    const other = await dyingUpload('replica-h', 'acme/other.wav', MiB);
    expect(await mine.store.abortRecorded({ mine: true })).toBe(1);
    await waitFor(
      'only the other upload open',
      async () => {
        const open = await listedOpen();
        return open.length === 1 && open[0] === `acme/other.wav#${other.uploadId}`;
      },
      5_000,
    );
    expect((await mine.records.list()).map((r) => r.uploadId)).toEqual([other.uploadId]);
  });

  it.each(['stream', 'buffer'] as const)(
    'a completed upload (%s parts) leaves no record and nothing open',
    async (mode) => {
      prefix = uniquePrefix('rgw-mpu');
      const rec = records('replica-d');
      const cfg = config(mode);
      const store = makeS3Store(cfg, makeS3Client(cfg, { credentials: s3.credentials }), { records: rec });
      cleanups.push(() => store.client.destroy());
      const size = 17 * MiB;
      await store.put(`acme/done-${mode}.wav`, Readable.from([Buffer.alloc(size, 1)]), {
        size,
        metadata: {},
      });
      expect((await store.head(`acme/done-${mode}.wav`))?.etag).toMatch(/-3"$/); // S3's multipart ETag
      expect(await rec.list()).toEqual([]);
      expect((await listedOpen()).filter((u) => u.startsWith(`acme/done-${mode}.wav#`))).toEqual([]);
    },
  );
});
