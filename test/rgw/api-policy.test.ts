/**
 * The upload API's presigned POST against Ceph's RADOS Gateway, a store that checks POST policies
 * (s3rver does not): the signed lower-case fields are accepted, and every way around the policy is
 * refused — a file over the size range, another key, a tampered policy, signature or signed metadata
 * field, an expired policy. Then the whole path: the API role signing for RGW, a Python `requests`
 * client uploading, the sweep recording the call.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisApiTokens } from '../../src/adapters/redis-api.js';
import { makeS3Client, makeS3Store } from '../../src/adapters/s3.js';
import { makeS3Presigner } from '../../src/adapters/s3-presign.js';
import { parseConfig } from '../../src/config.js';
import { type Daemon, startDaemon } from '../../src/main.js';
import type { PresignedPost, Presigner } from '../../src/ports/api.js';
import { sineWav } from '../../src/sandbox/wav.js';
import { startVelaStandin, type VelaStandin } from '../../src/standin/vela-standin.js';
import { captureLog } from '../support/daemon.js';
import { redisUrl, uniquePrefix } from '../support/env.js';
import { tempDir } from '../support/fs.js';
import { haveRgw, type Rgw, rgwClient, startRgw } from '../support/rgw.js';

const run = promisify(execFile);
const BUCKET = 'calls';

describe.skipIf(!haveRgw())('presigned POST policies on a RADOS Gateway', () => {
  let rgw: Rgw;
  let client: S3Client;
  let presigner: Presigner;
  const wav = sineWav({ seconds: 1, frequency: 440 });

  beforeAll(async () => {
    rgw = await startRgw({ bucket: BUCKET });
    client = rgwClient(rgw);
    presigner = makeS3Presigner(
      { bucket: BUCKET, region: rgw.region, endpoint: rgw.endpoint, forcePathStyle: true },
      async () => ({ accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey }),
    );
  });
  afterAll(async () => {
    client?.destroy();
    await rgw?.stop();
  });

  const sign = (key: string, o: { maxSize?: number; expiresInMs?: number } = {}) =>
    presigner.presign({
      key,
      maxSize: o.maxSize ?? 1024 * 1024,
      expiresAt: new Date(Date.now() + (o.expiresInMs ?? 15 * 60_000)),
      contentType: 'audio/wav',
      metadata: {
        org: 'acme',
        email: 'jane@acme.example',
        'date-of-call': '2024-03-05',
        'voice-id': 'enrolled',
      },
    });

  async function postForm(post: PresignedPost, file: Buffer, fields = post.fields) {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append('file', new Blob([file], { type: 'audio/wav' }), 'call.wav');
    const res = await fetch(post.url, { method: 'POST', body: form });
    const text = await res.text();
    return { status: res.status, code: /<Code>([^<]+)<\/Code>/.exec(text)?.[1] };
  }

  const head = (key: string) =>
    client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(
      (h) => h,
      () => undefined,
    );

  it('accepts the lower-case fields as signed: the object carries the signed metadata and content type', async () => {
    const post = await sign('acme/api/ok/call.wav');
    expect(Object.keys(post.fields).every((k) => k === k.toLowerCase())).toBe(true);
    const res = await postForm(post, wav);
    expect(res.status).toBe(204);
    const h = (await head('acme/api/ok/call.wav'))!;
    expect(h.ContentLength).toBe(wav.length);
    expect(h.ContentType).toBe('audio/wav');
    expect(h.Metadata).toMatchObject({
      email: 'jane@acme.example',
      'date-of-call': '2024-03-05',
      'voice-id': 'enrolled',
    });
  });

  it('a file over the content-length-range: 400 EntityTooLarge, no object', async () => {
    const post = await sign('acme/api/big/call.wav', { maxSize: 1024 });
    expect(await postForm(post, Buffer.alloc(4096, 1))).toEqual({ status: 400, code: 'EntityTooLarge' });
    expect(await head('acme/api/big/call.wav')).toBeUndefined();
  });

  it('another key than the signed one: 403, nothing under either key', async () => {
    const post = await sign('acme/api/k/call.wav');
    const res = await postForm(post, wav, { ...post.fields, key: 'globex/stolen.wav' });
    expect(res.status).toBe(403);
    expect(await head('globex/stolen.wav')).toBeUndefined();
  });

  it('a tampered policy (a larger size range) or signature, or a changed signed metadata field: 403', async () => {
    const post = await sign('acme/api/t/call.wav', { maxSize: 1024 });
    const policy = JSON.parse(Buffer.from(post.fields.policy!, 'base64').toString('utf8'));
    policy.conditions = policy.conditions.map((c: unknown) =>
      Array.isArray(c) && c[0] === 'content-length-range' ? ['content-length-range', 1, 10 ** 9] : c,
    );
    const forged = Buffer.from(JSON.stringify(policy)).toString('base64');
    expect((await postForm(post, Buffer.alloc(4096, 1), { ...post.fields, policy: forged })).status).toBe(
      403,
    );
    const sig = post.fields['x-amz-signature']!;
    const badSig = `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`;
    expect((await postForm(post, wav, { ...post.fields, 'x-amz-signature': badSig })).status).toBe(403);
    const meta = { ...post.fields, 'x-amz-meta-email': 'mallory@evil.example' };
    expect((await postForm(post, wav, meta)).status).toBe(403);
    expect(await head('acme/api/t/call.wav')).toBeUndefined();
  });

  it('an expired policy: 403 and no object', async () => {
    const post = await sign('acme/api/old/call.wav', { expiresInMs: -1000 });
    expect((await postForm(post, wav)).status).toBe(403);
    expect(await head('acme/api/old/call.wav')).toBeUndefined();
  });

  it('end to end: the api role signs for RGW, Python requests uploads, the sweep records the call', async () => {
    const vela: VelaStandin = await startVelaStandin({
      token: 'vela-rgw',
      defaultAllocation: { status: 'within' },
    });
    const prefix = uniquePrefix('api-rgw');
    const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const dir = await tempDir('api-rgw');
    const logs = captureLog();
    let daemon: Daemon | undefined;
    try {
      const config = parseConfig(
        {
          redis: { url: redisUrl(), prefix },
          s3: { bucket: BUCKET, endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true },
          vela: { url: vela.url, token: 'vela-rgw', timeout: '5s' },
          api: { port: 0 },
        },
        {},
      );
      const creds = { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey };
      const store = makeS3Store(config.s3, makeS3Client(config.s3, { credentials: creds }));
      daemon = await startDaemon(config, { role: 'api', log: logs.log, store, s3Credentials: creds });
      const { token } = await makeRedisApiTokens(redis, prefix).create('apionly');
      const wavPath = join(dir.path, 'call.wav');
      await writeFile(wavPath, wav);
      const script = join(import.meta.dirname, '../clients/upload_requests.py');
      const { stdout } = await run('python3', [script, wavPath], {
        env: { ...process.env, API_URL: daemon.api!.url, API_TOKEN: token, ORG_ID: 'apionly', NO_PROXY: '*' },
      });
      const out = JSON.parse(stdout.trim().split('\n').pop()!) as { upload_status: number; key: string };
      expect(out.upload_status).toBe(204);
      expect(await daemon.api!.uploads.sweep()).toEqual({ completed: 1, expired: 0, tooLarge: 0 });
      expect((await head(out.key))?.Metadata).toMatchObject({ org: 'apionly', 'metadata-source': 'api' });
    } finally {
      await daemon?.close();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
      await vela.close();
      await dir.cleanup();
    }
  });
});
