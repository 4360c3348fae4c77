/**
 * Resume of an interrupted transfer (issue: far servers). The control connection to the in-process
 * FTP server runs through a TCP relay (test/support/tcp-proxy.ts) that drops it in the middle of a
 * multipart upload; the retry of the same version keeps the upload and its complete parts, asks the
 * store which parts it has (ListParts) and reads the rest of the file after `REST`. Measured at the
 * FTP server (the bytes each RETR sent, from which offset) and at the S3 proxy (part writes).
 */
import { randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRedisUploadRecords } from '../src/adapters/redis-uploads.js';
import { makeS3Store, type S3Store } from '../src/adapters/s3.js';
import type { Config } from '../src/config.js';
import type { Daemon } from '../src/main.js';
import type { UploadRecords } from '../src/ports/upload-records.js';
import { makeTestEnv, type TestEnv, waitIdle } from './support/daemon.js';
import { sha256, writeFileDeep } from './support/fs.js';
import { getObjectBuffer } from './support/s3.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';
import { waitFor } from './support/wait.js';

const MiB = 1024 * 1024;
const SIZE = 6 * MiB;
const PART = MiB;

let env: TestEnv | undefined;
let gateway: TcpProxy | undefined;
let records: UploadRecords | undefined;
let store: S3Store | undefined;
afterEach(async () => {
  await records?.close();
  await gateway?.stop();
  await env?.stop();
  env = gateway = undefined;
});

/** The test env with 1 MiB parts and the tenant's control connection through a relay it can cut. */
async function setUp(name: string): Promise<{ e: TestEnv; config: Config }> {
  const e = await makeTestEnv(name, {
    config: { worker: { concurrency: 1, keepCompleted: '1h' } },
  });
  env = e;
  gateway = await startTcpProxy({ host: '127.0.0.1', port: e.ftp.port });
  const [tenant] = e.config.tenants;
  const config = {
    ...e.config,
    s3: { ...e.config.s3, multipartThreshold: 2 * MiB, partSize: PART },
    tenants: [{ ...tenant!, ftp: { ...tenant!.ftp!, port: gateway.port } }],
  };
  // The store as the daemon makes it: open multipart uploads recorded in Redis.
  records = makeRedisUploadRecords(e.redis, e.prefix, { leaseMs: 30_000 });
  store = makeS3Store(config.s3, e.s3.client, { records });
  return { e, config };
}

/** Part writes (UploadPart) the store answered 200, by part number. */
function partWrites(e: TestEnv): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of e.s3.requests()) {
    const m = /[?&]partNumber=(\d+)/.exec(r.path);
    if (r.method === 'PUT' && m && r.status === 200) out.set(Number(m[1]), (out.get(Number(m[1])) ?? 0) + 1);
  }
  return out;
}

/** Starts the daemon, queues `path`, and drops the control connection once `parts` parts are in S3. */
async function cutAfterParts(e: TestEnv, config: Config, parts: number): Promise<Daemon> {
  // 2 MiB/s from the server: the cut lands in the middle of the file, not after it.
  e.ftp.faults = { slowData: { path: /long\.wav$/, bytesPerSecond: 2 * MiB } };
  const daemon = await e.start({ config, store });
  await daemon.poller!.pollNow('acme');
  expect(await daemon.poller!.pollNow('acme')).toMatchObject({ kind: 'done', enqueued: 1 });
  await waitFor(`${parts} parts in S3`, () => partWrites(e).size >= parts, 20_000, 20);
  return daemon;
}

const logs = (e: TestEnv, msg: string) =>
  e.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);

describe('resume of an interrupted transfer (FTP REST, S3 ListParts)', () => {
  it('a control connection cut after 2+ parts: the retry sends REST, reads only the rest, re-uploads no complete part; the object is whole', async () => {
    const { e, config } = await setUp('resume-ftp');
    const file = await writeFileDeep(e.root, 'calls/long.wav', randomBytes(SIZE));
    const daemon = await cutAfterParts(e, config, 2);
    const partsBeforeCut = partWrites(e).size;
    expect(gateway!.cut(), 'control connections dropped').toBeGreaterThan(0);
    e.ftp.faults = {}; // the retry at full speed
    expect((await waitIdle(daemon.syncQueue, 40_000)).failed).toBe(0);

    expect(sha256(await getObjectBuffer(e.s3.client, e.s3.bucket, 'acme/calls/long.wav'))).toBe(file.sha256);
    const retrs = e.ftp.retrs().filter((r) => r.path.endsWith('long.wav'));
    expect(retrs.length, 'the cut RETR and the retry').toBe(2);
    const [first, retry] = retrs as [(typeof retrs)[0], (typeof retrs)[0]];
    expect(first.start).toBe(0);
    expect(retry.start, 'the retry started after REST at a part boundary').toBeGreaterThanOrEqual(
      partsBeforeCut * PART,
    );
    expect(retry.start % PART).toBe(0);
    expect(retry.bytes, 'the retry read the rest of the file only').toBe(SIZE - retry.start);
    // No complete part written twice: every part number answered 200 once, 6 in all.
    const writes = partWrites(e);
    expect([...writes.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(
      [...writes.values()].every((n) => n === 1),
      JSON.stringify([...writes]),
    ).toBe(true);
    const creates = e.s3.requests().filter((r) => r.method === 'POST' && /[?&]uploads/.test(r.path));
    expect(creates.length, 'one multipart upload, continued').toBe(1);
    const resumed = logs(e, 'transfer resumed');
    expect(resumed).toHaveLength(1);
    expect(resumed[0]!.offset).toBe(retry.start);
    const metrics = await daemon.metrics.render();
    expect(metrics).toContain(`ftpsync_resumed_bytes_total{org="acme"} ${retry.start}`);
    // The upload record is gone with the completed upload.
    expect(await records!.list(), 'no upload record left').toEqual([]);
    console.info(
      `resume: cut after ${(first.bytes / MiB).toFixed(2)} MiB read (${partsBeforeCut} parts in S3); retry REST ${retry.start} read ${(retry.bytes / MiB).toFixed(2)} MiB of ${SIZE / MiB}: ${(retry.start / MiB).toFixed(0)} MiB saved`,
    );
  });

  it('the file changed between attempts: the old upload is aborted, the new version uploads from byte 0', async () => {
    const { e, config } = await setUp('resume-changed');
    await writeFileDeep(e.root, 'calls/long.wav', randomBytes(SIZE));
    const daemon = await cutAfterParts(e, config, 2);
    // A new version (another size) replaces the file; the RETR under way keeps reading the old one.
    const next = randomBytes(SIZE + 12_345);
    const tmp = join(e.root, 'calls/.long.tmp');
    await writeFile(tmp, next);
    await rename(tmp, join(e.root, 'calls/long.wav'));
    gateway!.cut();
    e.ftp.faults = {};
    expect((await waitIdle(daemon.syncQueue, 40_000)).failed).toBe(0);
    await daemon.poller!.pollNow('acme');
    await daemon.poller!.pollNow('acme');
    await waitFor(
      'the new version synced',
      async () =>
        (await e.store.head('acme/calls/long.wav'))?.metadata['source-size'] === String(next.length),
      40_000,
    );
    const got = await getObjectBuffer(e.s3.client, e.s3.bucket, 'acme/calls/long.wav');
    expect(got.length).toBe(next.length);
    expect(sha256(got), 'the new content').toBe(sha256(next));
    const retrs = e.ftp.retrs().filter((r) => r.path.endsWith('long.wav'));
    expect(retrs.at(-1)).toMatchObject({ start: 0, bytes: next.length });
    expect(logs(e, 'transfer resumed')).toHaveLength(0);
    const aborts = e.s3.requests().filter((r) => r.method === 'DELETE' && /[?&]uploadId=/.test(r.path));
    expect(aborts.length, 'the old version’s upload aborted').toBeGreaterThanOrEqual(1);
    expect(await records!.list(), 'no upload record left').toEqual([]);
  });

  it('a server that refuses REST: the retry starts over (debug log), the object is whole', async () => {
    const { e, config } = await setUp('resume-refused');
    const file = await writeFileDeep(e.root, 'calls/long.wav', randomBytes(SIZE));
    const daemon = await cutAfterParts(e, config, 2);
    gateway!.cut();
    e.ftp.faults = { refuseCommand: { directive: 'REST', code: 502, message: 'REST not implemented' } };
    expect((await waitIdle(daemon.syncQueue, 40_000)).failed).toBe(0);
    expect(sha256(await getObjectBuffer(e.s3.client, e.s3.bucket, 'acme/calls/long.wav'))).toBe(file.sha256);
    const retrs = e.ftp.retrs().filter((r) => r.path.endsWith('long.wav'));
    expect(retrs.at(-1)).toMatchObject({ start: 0, bytes: SIZE });
    expect(logs(e, 'the source refused to resume the download: starting over')).toHaveLength(1);
    const aborts = e.s3.requests().filter((r) => r.method === 'DELETE' && /[?&]uploadId=/.test(r.path));
    expect(aborts.length, 'the upload that could not be continued is aborted').toBe(1);
    expect(await records!.list(), 'no upload record left').toEqual([]);
    expect(await daemon.metrics.render()).not.toMatch(/ftpsync_resumed_bytes_total\{/);
  });
});
