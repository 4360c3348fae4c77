/**
 * The S3 store against s3rver. A buffered PutObject goes up through the SDK's PutObjectCommand on the
 * tuned client (s3-client.ts): over TLS as UNSIGNED-PAYLOAD (no SHA-256 pass over the body; TLS
 * protects it in transit), over plain HTTP with the body's SHA-256 (the store's only check that the
 * bytes arrived). Both against s3rver, the TLS one with a certificate from a throwaway CA given as
 * `s3.caFile` (the https agent of the SDK's request handler carries it), and through an HTTP proxy
 * given as a custom request handler. The SDK's retries, timeout and abort on a failing store. And a
 * streamed multipart body longer than its declared size: refused, the upload aborted, no object.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  createServer as createHttpServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect } from 'node:net';
import { type Duplex, PassThrough } from 'node:stream';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeS3Client, makeS3Store, USER_AGENT } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { tempDir } from './support/fs.js';
import { describeNeeding, missing } from './support/needs.js';
import { getObjectBuffer, type S3TestServer, s3Client, startS3 } from './support/s3.js';
import { makeTestPki, type TestPki } from './support/tls.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const S3RVER = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

const s3Config = (endpoint: string, more: Record<string, unknown> = {}) =>
  parseConfig(
    {
      redis: { url: 'redis://127.0.0.1:1' },
      s3: { bucket: 'calls', endpoint, forcePathStyle: true, ...more },
      vela: { enabled: false },
      tenants: [],
    },
    {},
  ).s3;

describeNeeding(missing.openssl(), 'payload signing of a buffered PutObject', () => {
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

  it('over TLS (a private CA in s3.caFile): UNSIGNED-PAYLOAD, accepted by the store, the object intact', async () => {
    const cfg = s3Config(tls.endpoint, { caFile: pki.caFile });
    const client = makeS3Client(cfg, { credentials: S3RVER });
    const store = makeS3Store(cfg, client);
    const body = randomBytes(2 * 1024 * 1024);
    await store.put('acme/tls.wav', body, { size: body.length, metadata: { org: 'acme' } });
    expect(sha256(await getObjectBuffer(client, 'calls', 'acme/tls.wav'))).toBe(sha256(body));
    expect((await store.head('acme/tls.wav'))?.metadata).toEqual({ org: 'acme' });
    client.destroy();

    // What went on the wire, seen by a recording HTTPS server with the same certificate.
    const seen: IncomingHttpHeaders[] = [];
    const recorder = createHttpsServer({ key: pki.server.key, cert: pki.server.cert }, (req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () => res.writeHead(200, { etag: '"x"' }).end());
    });
    await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(recorder.address() as AddressInfo).port}`;
      const rcfg = s3Config(url, { caFile: pki.caFile });
      const rstore = makeS3Store(rcfg, makeS3Client(rcfg, { credentials: S3RVER }));
      await rstore.put('acme/seen.wav', body, { size: body.length, metadata: {} });
      expect(seen.map((h) => [h['x-amz-content-sha256'], h['user-agent']])).toEqual([
        ['UNSIGNED-PAYLOAD', USER_AGENT],
      ]);
    } finally {
      recorder.close();
    }
  });

  it('over plain HTTP: the body’s SHA-256 is signed', async () => {
    const cfg = s3Config(plain.endpoint);
    const store = makeS3Store(cfg, makeS3Client(cfg, { credentials: S3RVER }));
    const body = randomBytes(100_000);
    await store.put('acme/plain.wav', body, { size: body.length, metadata: {} });
    const puts = plain.requests().filter((r) => r.method === 'PUT');
    expect(puts.map((r) => [r.payloadHash, r.userAgent])).toEqual([[sha256(body), USER_AGENT]]);
  });

  it('no Expect: 100-continue on large bodies (the body goes at once on our agents; the header cost the store and us CPU)', async () => {
    const cfg = s3Config(plain.endpoint);
    const store = makeS3Store(cfg, makeS3Client(cfg, { credentials: S3RVER }));
    const body = randomBytes(3 * 1024 * 1024); // the SDK's default threshold is 2 MiB
    await store.put('acme/large.wav', body, { size: body.length, metadata: {} });
    const put = plain.requests().findLast((r) => r.method === 'PUT')!;
    expect([put.payloadHash, put.expect]).toEqual([sha256(body), undefined]);
  });

  it('a client made elsewhere (a plain S3Client, abort signals as send options) works too', async () => {
    const store = makeS3Store(s3Config(plain.endpoint), plain.client);
    const body = randomBytes(1000);
    await store.put('acme/other.wav', body, {
      size: body.length,
      metadata: { 'source-path': 'a b/ü.wav' },
      signal: new AbortController().signal,
    });
    const last = plain.requests().at(-1)!;
    expect([last.method, last.payloadHash]).toEqual(['PUT', sha256(body)]);
    expect(sha256(await getObjectBuffer(plain.directClient, 'calls', 'acme/other.wav'))).toBe(sha256(body));
  });
});

describe('through an HTTP proxy (a custom request handler)', () => {
  let s3: S3TestServer;
  let proxy: import('node:http').Server;
  const tunnels: string[] = [];
  beforeAll(async () => {
    s3 = await startS3();
    // A CONNECT proxy: every byte of the store's requests goes through it.
    proxy = createHttpServer();
    proxy.on('connect', (req, client, head) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    proxy?.closeAllConnections();
    proxy?.close();
    await s3?.stop();
  });

  it('every request of the store goes through the handler the client was given', async () => {
    const proxyPort = (proxy.address() as AddressInfo).port;
    class TunnelAgent extends HttpAgent {
      override createConnection(
        opts: { host?: string | null; port?: number | string | null },
        cb?: (err: Error | null, socket: Duplex) => void,
      ): undefined {
        const req = httpRequest({
          host: '127.0.0.1',
          port: proxyPort,
          method: 'CONNECT',
          path: `${opts.host}:${opts.port}`,
        });
        req.on('connect', (res, socket) =>
          res.statusCode === 200 ? cb?.(null, socket) : cb?.(new Error(`proxy: ${res.statusCode}`), socket),
        );
        req.on('error', (err) => cb?.(err, undefined as unknown as Duplex));
        req.end();
        return undefined;
      }
    }
    const client = s3Client(s3.endpoint, {
      requestHandler: new NodeHttpHandler({ httpAgent: new TunnelAgent({ keepAlive: true }) }),
    });
    const store = makeS3Store(s3Config(s3.endpoint), client);
    const body = randomBytes(30_000);
    await store.put('acme/proxied.wav', body, { size: body.length, metadata: { org: 'acme' } });
    expect((await store.head('acme/proxied.wav'))?.metadata).toEqual({ org: 'acme' });
    expect(tunnels.length).toBeGreaterThanOrEqual(1);
    expect(new Set(tunnels)).toEqual(new Set([new URL(s3.endpoint).host]));
    client.destroy();
  });
});

describe('PutObject against a store that fails', () => {
  const body = randomBytes(5000);
  async function withServer(
    answer: (
      n: number,
      res: import('node:http').ServerResponse,
      req: import('node:http').IncomingMessage,
    ) => void,
    run: (endpoint: string) => Promise<void>,
  ) {
    let n = 0;
    const server = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => answer(++n, res, req));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    return n;
  }
  const storeAt = (endpoint: string, more: Record<string, unknown> = {}) => {
    const cfg = s3Config(endpoint, more);
    return makeS3Store(cfg, makeS3Client(cfg, { credentials: S3RVER }));
  };

  it('a 503 is retried (up to 3 tries); the third answer counts', async () => {
    const tries = await withServer(
      (n, res) =>
        n < 3
          ? res.writeHead(503).end('<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>')
          : res.writeHead(200, { etag: '"ok"' }).end(),
      async (url) => {
        await expect(
          storeAt(url).put('acme/a.wav', body, { size: body.length, metadata: {} }),
        ).resolves.toEqual({
          etag: '"ok"',
        });
      },
    );
    expect(tries).toBe(3);
  });

  it('a 403 is not retried and names S3’s code and message', async () => {
    const tries = await withServer(
      (_n, res) =>
        res.writeHead(403).end('<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'),
      async (url) => {
        await expect(
          storeAt(url).put('acme/a.wav', body, { size: body.length, metadata: {} }),
        ).rejects.toMatchObject({ name: 'AccessDenied', message: 'Access Denied' });
      },
    );
    expect(tries).toBe(1);
  });

  it('a store that never answers fails after s3.idleTimeout, on every try', async () => {
    const started = Date.now();
    const tries = await withServer(
      () => {},
      async (url) => {
        await expect(
          storeAt(url, { idleTimeout: '300ms' }).put('acme/a.wav', body, { size: body.length, metadata: {} }),
        ).rejects.toMatchObject({
          name: 'TimeoutError',
          message: expect.stringMatching(/after 300 ms of inactivity/),
        });
      },
    );
    expect(tries).toBe(3);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('an abort signal stops the request at once and is what the put rejects with', async () => {
    const ac = new AbortController();
    await withServer(
      () => {},
      async (url) => {
        const put = storeAt(url).put('acme/a.wav', body, {
          size: body.length,
          metadata: {},
          signal: ac.signal,
        });
        setTimeout(() => ac.abort(new Error('shutting down')), 100);
        await expect(put).rejects.toThrow('shutting down');
      },
    );
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
