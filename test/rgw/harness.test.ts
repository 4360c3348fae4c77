/**
 * The RADOS Gateway harness (test/support/rgw.ts) and the facts about RGW 16 that other tests rely
 * on: it checks signatures, keeps user metadata, refuses streamed aws-chunked bodies unless the client
 * sends checksums only when required, lists and aborts multipart uploads; two gateways run side by
 * side; a stopped one leaves no daemon and no directory, also when its owner dies without stopping it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { haveRgw, type Rgw, rgwClient, startRgw } from '../support/rgw.js';
import { waitFor } from '../support/wait.js';

const BUCKET = 'facts';
const SCRIPT = fileURLToPath(new URL('../support/rgw/rgw.sh', import.meta.url));

/** Pids of running (not zombie) processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const fsidOf = (dir: string) => readFileSync(join(dir, 'ceph.conf'), 'utf8').match(/^fsid = (.*)$/m)?.[1];

const rgwDirs = () =>
  new Set(readdirSync(tmpdir()).filter((d) => d.startsWith('ftp-sync-rgw-') || d.startsWith('rgw-owner-')));

describe.skipIf(!haveRgw())('RADOS Gateway harness', () => {
  let rgw: Rgw;
  let client: S3Client;
  let startMs = 0;
  let firstDir = '';
  beforeAll(async () => {
    const t0 = Date.now();
    const before = rgwDirs();
    rgw = await startRgw({ bucket: BUCKET });
    startMs = Date.now() - t0;
    firstDir = join(tmpdir(), [...rgwDirs()].find((d) => !before.has(d)) ?? 'none');
    console.log(`rgw: signed S3 answered ${(startMs / 1000).toFixed(1)} s after the start`);
    client = rgwClient(rgw);
  }, 120_000);
  afterAll(async () => {
    client?.destroy();
    await rgw?.stop();
  });

  it('starts within 90 s and answers signed requests; a wrong secret is refused with 403', async () => {
    expect(startMs).toBeLessThan(90_000);
    const names = (await client.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name);
    expect(names).toContain(BUCKET);
    const wrong = rgwClient({ ...rgw, secretAccessKey: 'not-the-secret' }, { maxAttempts: 1 });
    try {
      await expect(wrong.send(new ListBucketsCommand({}))).rejects.toMatchObject({
        name: 'SignatureDoesNotMatch',
        $metadata: { httpStatusCode: 403 },
      });
    } finally {
      wrong.destroy();
    }
  });

  it('keeps the body, the user metadata and the content type', async () => {
    await client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'acme/é a.wav',
        Body: 'RIFF-bytes',
        ContentType: 'audio/wav',
        Metadata: { email: 'agent@acme.example', 'date-of-call': '2026-12-01' },
      }),
    );
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'acme/é a.wav' }));
    expect(head.Metadata).toEqual({ email: 'agent@acme.example', 'date-of-call': '2026-12-01' });
    expect(head.ContentType).toBe('audio/wav');
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'acme/é a.wav' }));
    expect(await got.Body?.transformToString()).toBe('RIFF-bytes');
  });

  it('refuses a streamed aws-chunked body with a trailing checksum (411); without default checksums it is accepted', async () => {
    const body = () => Readable.from([Buffer.alloc(70_000, 1)]);
    const checksums = rgwClient(rgw, { requestChecksumCalculation: 'WHEN_SUPPORTED', maxAttempts: 1 });
    try {
      await expect(
        checksums.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: 'acme/chunked.wav',
            Body: body(),
            ContentLength: 70_000,
          }),
        ),
      ).rejects.toMatchObject({ $metadata: { httpStatusCode: 411 } });
    } finally {
      checksums.destroy();
    }
    await client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'acme/chunked.wav', Body: body(), ContentLength: 70_000 }),
    );
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'acme/chunked.wav' }));
    expect(head.ContentLength).toBe(70_000);
  });

  it('lists open multipart uploads by prefix and aborts them (s3rver: 501 and 405)', async () => {
    const open = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'mpu/a.wav' }));
    await client.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: 'mpu/a.wav',
        UploadId: open.UploadId,
        PartNumber: 1,
        Body: Buffer.alloc(1024, 2),
      }),
    );
    const other = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'else/b.wav' }));
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'mpu/' }));
    expect(listed.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([['mpu/a.wav', open.UploadId]]);
    expect(Date.now() - (listed.Uploads?.[0]?.Initiated?.getTime() ?? 0)).toBeLessThan(5 * 60_000);
    await client.send(
      new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'mpu/a.wav', UploadId: open.UploadId }),
    );
    const after = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    expect(after.Uploads?.map((u) => u.UploadId)).toEqual([other.UploadId]);
    await expect(
      client.send(
        new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'mpu/a.wav', UploadId: open.UploadId }),
      ),
    ).rejects.toMatchObject({ name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } });
  });

  it('a second gateway runs beside the first, apart; stop() kills its daemons and removes its directory', async () => {
    const before = rgwDirs();
    const second = await startRgw();
    const dir = [...rgwDirs()].find((d) => !before.has(d));
    expect(dir, 'the second gateway has a directory of its own').toBeDefined();
    const path = join(tmpdir(), dir ?? '');
    expect(second.endpoint).not.toBe(rgw.endpoint);
    expect(second.accessKeyId).not.toBe(rgw.accessKeyId);
    const c2 = rgwClient(second);
    try {
      expect((await c2.send(new ListBucketsCommand({}))).Buckets ?? []).toEqual([]);
    } finally {
      c2.destroy();
    }
    expect(fsidOf(path)).toMatch(/^[0-9a-f-]{36}$/);
    expect(fsidOf(path)).not.toBe(fsidOf(firstDir));
    expect(processesMentioning(path).length).toBeGreaterThanOrEqual(3); // mon, osd, radosgw
    await second.stop();
    expect(existsSync(path)).toBe(false);
    await waitFor('the daemons gone', () => processesMentioning(path).length === 0, 5_000);
    // The first one is untouched.
    expect((await client.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).toContain(BUCKET);
  }, 120_000);

  it('a cluster whose owner process dies is stopped by its watchdog', async () => {
    const owner = spawn('sleep', ['600'], { stdio: 'ignore' });
    const path = join(tmpdir(), `rgw-owner-${process.pid}-${Date.now()}`);
    try {
      const [mon, s3] = [await freePort(), await freePort()];
      const start = spawn(
        'bash',
        [SCRIPT, 'start', path, String(mon), String(s3), 'OWNERKEY', 'ownersecret', String(owner.pid)],
        {
          stdio: 'ignore',
        },
      );
      const code = await new Promise<number | null>((resolve) => start.on('exit', resolve));
      expect(code).toBe(0);
      expect(processesMentioning(path).length).toBeGreaterThanOrEqual(3);
      owner.kill('SIGKILL');
      await waitFor('the watchdog to stop the cluster', () => !existsSync(path), 10_000);
      await waitFor('the daemons gone', () => processesMentioning(path).length === 0, 5_000);
    } finally {
      owner.kill('SIGKILL');
      if (existsSync(path)) spawn('bash', [SCRIPT, 'stop', path], { stdio: 'ignore' });
    }
  }, 120_000);
});
