import { randomBytes } from 'node:crypto';
import { Agent, createServer, type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { finished, pipeline, Transform } from 'node:stream';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { sdkLogger } from '../../src/adapters/s3.js';
import { tempDir } from './fs.js';
import type { Rgw } from './rgw.js';

/*
 * s3rver 3.7 with @aws-sdk/client-s3 3.x (checked in test/harness.test.ts):
 * - Works with path-style requests, SigV4 (signatures are checked), PutObject with x-amz-meta-*
 *   metadata, HeadObject, GetObject, ListObjectsV2, multipart upload through lib-storage `Upload`.
 * - The SDK's default CRC32 checksums must be off (`requestChecksumCalculation: 'WHEN_REQUIRED'`).
 * - ListMultipartUploads answers 501 NotImplemented.
 * - AbortMultipartUpload answers 405 MethodNotAllowed, and lib-storage's `Upload` then throws that
 *   405 instead of the error that made it abort. The fault proxy answers AbortMultipartUpload itself
 *   with 204 (the parts stay on s3rver's disk, which nothing can see).
 * - ListParts answers 405. The fault proxy answers it itself from the UploadPart requests s3rver
 *   answered 200 (number, ETag, bytes; none yet: an empty list), until the upload is completed or
 *   aborted (then 404 NoSuchUpload), as S3 does: a part whose request was cut is not listed.
 * - A multipart object's ETag is the MD5 of the whole object, not S3's `<md5 of part md5s>-<n>`.
 * - ListObjectsV2 answers 500 InternalError when more than 1,000 keys match (it cannot page).
 * - It checks the signing time against its own clock (a request signed 15 min off is refused with
 *   RequestTimeTooSkewed).
 */

export interface S3Request {
  method: string;
  /** Path and query string, e.g. `/calls/acme/a.wav?partNumber=1&uploadId=…`. */
  path: string;
  /** Status sent to the client; 0 when the proxy dropped the connection (`down`). */
  status: number;
  /** The signed `x-amz-content-sha256`: the body's SHA-256 or `UNSIGNED-PAYLOAD`. */
  payloadHash?: string;
  userAgent?: string;
  /** A CopyObject's source (`x-amz-copy-source`): the object is not uploaded again. */
  copySource?: string;
  /** The client's `Expect` header (`100-continue`), if it sent one. */
  expect?: string;
}

/** What a failed request is answered with, beyond its status. */
export interface CannedReply {
  code?: string;
  headers?: Record<string, string>;
}

/** Faults injected by the HTTP proxy in front of s3rver. */
export interface FaultProxy {
  /**
   * The next `n` requests get `status` (default 503) with an S3 XML error body: its `<Code>` is
   * `reply.code` (default: one that fits the status), and `reply.headers` are added to the answer
   * (`Retry-After`, `x-amz-bucket-region`, `Date`, …).
   */
  failNext(n: number, status?: number, reply?: CannedReply): void;
  /** Every request for the next `ms` milliseconds gets `status` (default 503). */
  failFor(ms: number, status?: number): void;
  /** For `ms` milliseconds every connection is destroyed (open ones at once, new ones on accept). */
  down(ms: number): void;
  /**
   * For `ms` milliseconds every request is read but never answered (a store that stops answering);
   * when the time is up, the connections of those requests are destroyed.
   */
  stall(ms: number): void;
  /**
   * Request bodies reach s3rver at no more than `bytesPerSecond` (a slow link that still moves), for
   * requests that start while it is set; 0 lifts it.
   */
  throttle(bytesPerSecond: number): void;
  /** Clears all faults. */
  reset(): void;
}

export interface S3TestServer {
  /** What is behind the proxy: s3rver in this process, or a RADOS Gateway (./rgw.ts). */
  backend: 's3rver' | 'rgw';
  /** The fault proxy's URL: point the code under test here. Its requests are logged and faulted. */
  endpoint: string;
  /** s3rver (or the RADOS Gateway) itself, bypassing the proxy. */
  directEndpoint: string;
  bucket: string;
  /** The keys the store accepts (s3rver: `S3RVER`/`S3RVER`; RGW: its user's). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** A client of `endpoint`: its requests go through the proxy, so they are faulted and logged. */
  client: S3Client;
  /** A client of s3rver itself, for arranging and asserting without faults and without being logged. */
  directClient: S3Client;
  proxy: FaultProxy;
  /** Every request that reached the proxy, in arrival order. */
  requests(): S3Request[];
  stop(): Promise<void>;
}

/**
 * An S3 client configured for s3rver: path style, dummy credentials, no default checksums.
 * `overrides` win, e.g. `{ maxAttempts: 1 }` to see the first failure.
 */
export function s3Client(endpoint: string, overrides: S3ClientConfig = {}): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { ...S3RVER_CREDENTIALS },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // As the daemon's client (src/adapters/s3.ts): the SDK's notice of a failed streamed request is
    // expected in fault tests (the error reaches the caller) and must not flood the test output.
    logger: sdkLogger(),
    ...overrides,
  });
}

/** s3rver's fixed keys (any other signature is refused). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/**
 * The environment a daemon process needs to sign for `s3` (the SDK reads the standard chain):
 * `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`.
 */
export function s3Env(s3: Pick<S3TestServer, 'credentials'>): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
    AWS_REGION: 'us-east-1',
  };
}

/**
 * Starts s3rver (files in a temp dir, silent) with one bucket, behind a fault proxy. With `rgw`, the
 * proxy fronts that running RADOS Gateway instead (started once per test file by `startRgw`), the
 * bucket is created on it (default: a fresh `calls-<hex>`, so environments sharing one gateway keep
 * apart), and `stop()` closes only the proxy and the clients. Against RGW the proxy forwards
 * AbortMultipartUpload (s3rver's 405 is answered by the proxy itself, see above).
 */
export async function startS3(opts: { bucket?: string; rgw?: Rgw } = {}): Promise<S3TestServer> {
  if (opts.rgw) return startS3OnRgw(opts.rgw, opts.bucket ?? `calls-${randomBytes(4).toString('hex')}`);
  const bucket = opts.bucket ?? 'calls';
  const dir = await tempDir('s3rver');
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir.path,
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  const { port: upstreamPort } = await s3rver.run();
  const proxy = await startFaultProxy(upstreamPort);
  const endpoint = `http://127.0.0.1:${proxy.port}`;
  const directEndpoint = `http://127.0.0.1:${upstreamPort}`;
  const client = s3Client(endpoint);
  const directClient = s3Client(directEndpoint);

  let stopping: Promise<void> | undefined;
  return {
    backend: 's3rver',
    credentials: { ...S3RVER_CREDENTIALS },
    endpoint,
    directEndpoint,
    bucket,
    client,
    directClient,
    proxy: proxy.faults,
    requests: () => [...proxy.log],
    stop() {
      stopping ??= (async () => {
        client.destroy();
        directClient.destroy();
        await proxy.close();
        await s3rver.close();
        await dir.cleanup();
      })();
      return stopping;
    },
  };
}

async function startS3OnRgw(rgw: Rgw, bucket: string): Promise<S3TestServer> {
  const credentials = { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey };
  const directClient = s3Client(rgw.endpoint, { credentials, region: rgw.region });
  await directClient.send(new CreateBucketCommand({ Bucket: bucket }));
  const proxy = await startFaultProxy(Number(new URL(rgw.endpoint).port), { answerAborts: false });
  const endpoint = `http://127.0.0.1:${proxy.port}`;
  const client = s3Client(endpoint, { credentials, region: rgw.region });
  let stopping: Promise<void> | undefined;
  return {
    backend: 'rgw',
    credentials,
    endpoint,
    directEndpoint: rgw.endpoint,
    bucket,
    client,
    directClient,
    proxy: proxy.faults,
    requests: () => [...proxy.log],
    stop() {
      stopping ??= (async () => {
        client.destroy();
        directClient.destroy();
        await proxy.close();
      })();
      return stopping;
    },
  };
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer'];
const ERROR_CODES: Record<number, string> = {
  400: 'BadRequest',
  403: 'AccessDenied',
  404: 'NoSuchKey',
  429: 'SlowDown',
  500: 'InternalError',
  503: 'SlowDown',
};

function forwardable(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out = { ...headers };
  for (const name of [...HOP_BY_HOP, 'expect']) delete out[name];
  return out;
}

function errorBody(status: number, path: string, code = ERROR_CODES[status] ?? 'InternalError'): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>Injected fault (${status})</Message>` +
    `<Resource>${path.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</Resource>` +
    `<RequestId>${randomBytes(8).toString('hex')}</RequestId></Error>`
  );
}

/** Passes bytes on at `bytesPerSecond`, in slices of 16 KiB. */
function throttled(bytesPerSecond: number): Transform {
  const slice = 16 * 1024;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      let at = 0;
      const next = () => {
        if (at >= chunk.length) return cb();
        const piece = chunk.subarray(at, at + slice);
        at += piece.length;
        this.push(piece);
        setTimeout(next, (piece.length / bytesPerSecond) * 1000);
      };
      next();
    },
  });
}

/** The `uploadId` (and `partNumber`) of a multipart request's query string. */
function multipartQuery(url: string): { uploadId?: string; partNumber?: number } {
  const q = new URL(url, 'http://x').searchParams;
  const n = q.get('partNumber');
  return { uploadId: q.get('uploadId') ?? undefined, ...(n && { partNumber: Number(n) }) };
}

function listPartsBody(url: string, uploadId: string, parts: Map<number, { etag: string; size: number }>) {
  const [path = ''] = url.split('?');
  const [, bucket = '', ...key] = path.split('/');
  const esc = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
  const items = [...parts.entries()]
    .sort(([a], [b]) => a - b)
    .map(
      ([n, p]) =>
        `<Part><PartNumber>${n}</PartNumber><ETag>${esc(p.etag)}</ETag><Size>${p.size}</Size></Part>`,
    )
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Bucket>${esc(bucket)}</Bucket><Key>${esc(decodeURIComponent(key.join('/')))}</Key>` +
    `<UploadId>${esc(uploadId)}</UploadId><IsTruncated>false</IsTruncated>${items}</ListPartsResult>`
  );
}

/** AbortMultipartUpload: DELETE /bucket/key?uploadId=… */
function isAbortMultipart(req: IncomingMessage): boolean {
  return req.method === 'DELETE' && /[?&]uploadId=/.test(req.url ?? '');
}

/**
 * `answerAborts`: AbortMultipartUpload gets 204 from the proxy itself instead of reaching the store
 * (for s3rver, which answers 405).
 */
async function startFaultProxy(
  upstreamPort: number,
  opts: { answerAborts: boolean } = { answerAborts: true },
) {
  const agent = new Agent({ keepAlive: true });
  const log: S3Request[] = [];
  const sockets = new Set<Socket>();
  let failCount = 0;
  let failStatus = 503;
  let failReply: CannedReply = {};
  let failUntil = 0;
  let failUntilStatus = 503;
  let downUntil = 0;
  let stallUntil = 0;
  let throttleRate = 0;
  const stalled = new Set<Socket>();
  // s3rver mode: uploadId → part number → what s3rver confirmed (for ListParts, answered here).
  const uploads = new Map<string, Map<number, { etag: string; size: number }>>();
  const ended = new Set<string>(); // completed or aborted: NoSuchUpload from then on

  const takeFault = (): { status: number; reply: CannedReply } | undefined => {
    if (failCount > 0) {
      failCount--;
      return { status: failStatus, reply: failReply };
    }
    return Date.now() < failUntil ? { status: failUntilStatus, reply: {} } : undefined;
  };

  const server = createServer((req, res) => {
    const entry: S3Request = {
      method: req.method ?? '',
      path: req.url ?? '',
      status: 0,
      payloadHash: req.headers['x-amz-content-sha256'] as string | undefined,
      expect: req.headers.expect,
      copySource: req.headers['x-amz-copy-source'] as string | undefined,
      userAgent: req.headers['user-agent'],
    };
    log.push(entry);
    if (Date.now() < downUntil) {
      req.socket.destroy();
      return;
    }
    if (Date.now() < stallUntil) {
      req.resume();
      stalled.add(req.socket);
      req.socket.once('close', () => stalled.delete(req.socket));
      setTimeout(() => req.socket.destroy(), stallUntil - Date.now()).unref();
      return;
    }
    // Answer only after the request body was read, so the client sees a response, not an EPIPE.
    const answer = (status: number, body = '', extra: Record<string, string> = {}) => {
      entry.status = status;
      req.resume();
      finished(req, () => {
        const headers = body ? { 'content-type': 'application/xml' } : {};
        res.writeHead(status, { ...headers, 'x-amz-request-id': randomBytes(8).toString('hex'), ...extra });
        res.end(body);
      });
    };
    const fault = takeFault();
    if (fault) {
      return answer(fault.status, errorBody(fault.status, entry.path, fault.reply.code), fault.reply.headers);
    }
    const mp = multipartQuery(entry.path);
    if (opts.answerAborts && isAbortMultipart(req)) {
      if (mp.uploadId) {
        uploads.delete(mp.uploadId);
        ended.add(mp.uploadId);
      }
      return answer(204);
    }
    if (opts.answerAborts && req.method === 'GET' && mp.uploadId && !mp.partNumber) {
      // An upload not seen ending is open, with the parts s3rver confirmed (none yet: an empty list).
      if (ended.has(mp.uploadId)) return answer(404, errorBody(404, entry.path, 'NoSuchUpload'));
      return answer(200, listPartsBody(entry.path, mp.uploadId, uploads.get(mp.uploadId) ?? new Map()));
    }
    let bodyBytes = 0;
    const isPart = req.method === 'PUT' && mp.uploadId !== undefined && mp.partNumber !== undefined;
    if (isPart) req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));

    const upstream = request(
      {
        host: '127.0.0.1',
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: forwardable(req.headers),
        agent,
      },
      (upRes) => {
        entry.status = upRes.statusCode ?? 0;
        if (opts.answerAborts && mp.uploadId && entry.status === 200) {
          if (req.method === 'POST' && !/[?&]uploads\b/.test(entry.path)) {
            uploads.delete(mp.uploadId);
            ended.add(mp.uploadId);
          }
          if (isPart && req.readableEnded) {
            const parts = uploads.get(mp.uploadId) ?? new Map();
            parts.set(mp.partNumber!, { etag: String(upRes.headers.etag ?? ''), size: bodyBytes });
            uploads.set(mp.uploadId, parts);
          }
        }
        res.writeHead(upRes.statusCode ?? 502, forwardable(upRes.headers));
        pipeline(upRes, res, () => {});
      },
    );
    upstream.on('error', () => {
      if (res.headersSent) res.destroy();
      else answer(502, errorBody(502, entry.path));
    });
    if (throttleRate > 0) pipeline(req, throttled(throttleRate), upstream, () => {});
    else pipeline(req, upstream, () => {});
  });

  server.on('connection', (socket: Socket) => {
    if (Date.now() < downUntil) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });

  const faults: FaultProxy = {
    failNext(n, status = 503, reply = {}) {
      failCount = n;
      failStatus = status;
      failReply = reply;
    },
    failFor(ms, status = 503) {
      failUntil = Date.now() + ms;
      failUntilStatus = status;
    },
    down(ms) {
      downUntil = Date.now() + ms;
      for (const socket of sockets) socket.destroy();
    },
    stall(ms) {
      stallUntil = Date.now() + ms;
    },
    throttle(bytesPerSecond) {
      throttleRate = bytesPerSecond;
    },
    reset() {
      stallUntil = 0;
      for (const socket of stalled) socket.destroy();
      stalled.clear();
      failCount = 0;
      failUntil = 0;
      downUntil = 0;
      throttleRate = 0;
    },
  };

  return {
    port: (server.address() as AddressInfo).port,
    faults,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

/** Every object under `prefix`, sorted by key (ListObjectsV2, all pages). */
export async function listAll(
  client: S3Client,
  bucket: string,
  prefix = '',
): Promise<{ key: string; size: number; etag: string }[]> {
  const out: { key: string; size: number; etag: string }[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? [])
      out.push({ key: o.Key ?? '', size: o.Size ?? 0, etag: o.ETag ?? '' });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export async function getObjectBuffer(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!res.Body) throw new Error(`GetObject ${key}: no body`);
  return Buffer.from(await res.Body.transformToByteArray());
}
