/**
 * The S3 store against s3rver. How a buffered PutObject is signed: over TLS as UNSIGNED-PAYLOAD (no SHA-256 pass over the body;
 * TLS protects it in transit), over plain HTTP with the body's SHA-256 (the only check that the
 * bytes arrived). Both against s3rver, the TLS one with a certificate from a throwaway CA. And a
 * streamed multipart body longer than its declared size: refused, the upload aborted, no object.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Agent } from 'node:https';
import { PassThrough } from 'node:stream';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeS3Store } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { tempDir } from './support/fs.js';
import { getObjectBuffer, type S3TestServer, s3Client, startS3 } from './support/s3.js';
import { hasOpenssl, makeTestPki, type TestPki } from './support/tls.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The x-amz-content-sha256 header of every request the client sends, as signed. */
function recordPayloadHashes(client: ReturnType<typeof s3Client>): string[] {
  const seen: string[] = [];
  client.middlewareStack.add(
    (next) => (args) => {
      seen.push((args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] ?? '');
      return next(args);
    },
    { step: 'deserialize', name: 'recordPayloadHash' },
  );
  return seen;
}

const s3Config = (endpoint: string) =>
  parseConfig(
    {
      redis: { url: 'redis://127.0.0.1:1' },
      s3: { bucket: 'calls', endpoint, forcePathStyle: true },
      vela: { enabled: false },
      tenants: [],
    },
    {},
  ).s3;

describe.skipIf(!hasOpenssl())('payload signing of a buffered PutObject', () => {
  let pki: TestPki;
  let tls: { endpoint: string; close: () => Promise<void> };
  let plain: S3TestServer;
  beforeAll(async () => {
    pki = await makeTestPki();
    const dir = await tempDir('s3rver-tls');
    const server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: dir.path,
      vhostBuckets: false,
      configureBuckets: [{ name: 'calls' }],
      key: pki.server.key,
      cert: pki.server.cert,
    });
    const { port } = await server.run();
    tls = {
      endpoint: `https://127.0.0.1:${port}`,
      close: async () => {
        await server.close();
        await dir.cleanup();
      },
    };
    plain = await startS3();
  });
  afterAll(async () => {
    await tls?.close();
    await plain?.stop();
    await pki?.cleanup();
  });

  it('over TLS: UNSIGNED-PAYLOAD, accepted by the store, the object intact', async () => {
    const client = s3Client(tls.endpoint, {
      requestHandler: { httpsAgent: new Agent({ ca: pki.caCert }) },
    });
    const hashes = recordPayloadHashes(client);
    const store = makeS3Store(s3Config(tls.endpoint), client);
    const body = randomBytes(2 * 1024 * 1024);
    await store.put('acme/tls.wav', body, { size: body.length, metadata: { org: 'acme' } });
    expect(hashes).toEqual(['UNSIGNED-PAYLOAD']);
    expect(sha256(await getObjectBuffer(client, 'calls', 'acme/tls.wav'))).toBe(sha256(body));
    client.destroy();
  });

  it('over plain HTTP: the body’s SHA-256 is signed', async () => {
    const client = s3Client(plain.endpoint);
    const hashes = recordPayloadHashes(client);
    const store = makeS3Store(s3Config(plain.endpoint), client);
    const body = randomBytes(100_000);
    await store.put('acme/plain.wav', body, { size: body.length, metadata: {} });
    expect(hashes).toEqual([sha256(body)]);
    client.destroy();
  });
});

describe('streamed multipart upload', () => {
  let s3: S3TestServer;
  beforeAll(async () => {
    s3 = await startS3();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('a body longer than its declared size is refused: no object, the upload aborted', async () => {
    const store = makeS3Store(s3Config(s3.endpoint), s3.client);
    const size = 9 * 1024 * 1024;
    const body = new PassThrough();
    const put = store.put('acme/long.wav', body, { size, metadata: {} });
    body.end(randomBytes(size + 1000));
    await expect(put).rejects.toThrow(/longer than its declared 9437184 bytes/);
    expect(await store.head('acme/long.wav')).toBeUndefined();
    const reqs = s3.requests();
    expect(reqs.filter((r) => r.method === 'DELETE' && r.path.includes('uploadId='))).toHaveLength(1);
  });
});
