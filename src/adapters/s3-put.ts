/**
 * PutObject of an in-memory body straight over node:http(s), signed with the SDK's own SigV4 signer,
 * credentials and endpoint resolution — without the SDK's middleware stack, which costs about 1 ms of
 * CPU per request (measured: bench/README "Performance"). Most call files are small, so per-request
 * cost decides the files per second; rclone sends its single-part uploads the same way.
 *
 * What the SDK would do and this keeps: the endpoint (and signing region and name) comes from the
 * client's endpoint provider for the bucket; credentials from the client's provider (the standard
 * AWS chain, refreshed as the SDK refreshes them); the payload hash as `s3.ts` decides it; up to
 * `maxAttempts` tries for a 5xx, 429 or a connection reset (the body is in memory, so a retry is safe);
 * the request fails when its socket is silent for `idleTimeout`.
 *
 * `makeDirectPut` returns undefined for a setup it does not cover (an auth scheme other than plain
 * SigV4, such as S3 Express): the caller then keeps the SDK's PutObject.
 */
import { createHash, createHmac } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';

export interface DirectPutOptions {
  bucket: string;
  /** Sign the body's SHA-256, or send it as UNSIGNED-PAYLOAD (over TLS, which protects it). */
  signPayload: (tls: boolean) => boolean;
  idleTimeoutMs: number;
  /** The client's own keep-alive agents when it has them (`makeS3Client`), else new ones. */
  agents?: { http: HttpAgent; https: HttpsAgent };
}

export interface DirectPutRequest {
  key: string;
  body: Buffer;
  /** x-amz-meta-* values, already header-safe. */
  metadata: Record<string, string>;
  contentType?: string;
  signal?: AbortSignal;
}

export type DirectPut = (req: DirectPutRequest) => Promise<{ etag?: string }>;

/** A non-2xx answer of the store, with S3's error code when the body had one. */
export class S3RequestError extends Error {
  override name = 'S3RequestError';
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** The socket was silent for `idleTimeout`. */
export class S3RequestTimeoutError extends Error {
  override name = 'S3RequestTimeoutError';
}

/** node:crypto as the signer's hash (the SDK's own Node hash class is not a public package). */
type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData): string | Uint8Array =>
  typeof d === 'string'
    ? d
    : ArrayBuffer.isView(d)
      ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
      : new Uint8Array(d);

class Sha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret ? createHmac('sha256', bytes(secret)) : createHash('sha256');
  }
  update(data: SourceData) {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset() {}
}

interface ResolvedEndpoint {
  url: URL;
  signingName: string;
  signingRegion: string;
}

/** The client's resolved configuration, as far as it is read here. */
interface ClientConfig {
  endpointProvider?: (params: Record<string, unknown>) => unknown;
  endpoint?: () => Promise<{ protocol: string; hostname: string; port?: number; path: string }>;
  region: () => Promise<string>;
  forcePathStyle?: boolean;
  useFipsEndpoint?: unknown;
  useDualstackEndpoint?: unknown;
  useAccelerateEndpoint?: unknown;
  maxAttempts?: () => Promise<number>;
  credentials?: unknown;
}

/** A resolved-config flag: a boolean, or a provider of one. */
const flag = async (v: unknown): Promise<boolean> =>
  Boolean(typeof v === 'function' ? await (v as () => Promise<unknown>)() : v);

async function resolveEndpoint(config: ClientConfig, bucket: string): Promise<ResolvedEndpoint | undefined> {
  const provider = config.endpointProvider;
  if (typeof provider !== 'function') return undefined;
  const custom = await config.endpoint?.();
  const region = await config.region();
  const ep = provider({
    Bucket: bucket,
    Region: region,
    UseFIPS: await flag(config.useFipsEndpoint),
    UseDualStack: await flag(config.useDualstackEndpoint),
    Accelerate: await flag(config.useAccelerateEndpoint),
    ForcePathStyle: config.forcePathStyle ?? false,
    Endpoint: custom
      ? `${custom.protocol}//${custom.hostname}${custom.port ? `:${custom.port}` : ''}${custom.path}`
      : undefined,
    UseGlobalEndpoint: false,
    DisableMultiRegionAccessPoints: false,
    UseArnRegion: false,
  }) as {
    url?: URL;
    properties?: { authSchemes?: { name?: string; signingName?: string; signingRegion?: string }[] };
  };
  const scheme = ep.properties?.authSchemes?.[0];
  if (!ep.url || (scheme && scheme.name !== 'sigv4')) return undefined;
  return {
    url: ep.url,
    signingName: scheme?.signingName ?? 's3',
    signingRegion: scheme?.signingRegion ?? region,
  };
}

/** S3's key encoding in a path: every segment percent-encoded as RFC 3986 says, `/` kept. */
export function encodeKeyPath(key: string): string {
  return key
    .split('/')
    .map((s) =>
      encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    )
    .join('/');
}

/** Sent with every direct PutObject (the store's logs tell them from the SDK's requests). */
export const USER_AGENT = 'ftp-sync';

/**
 * Once the body is sent, the slowest store waited for, and at most how many bytes the kernel's
 * socket buffers may still hold (see the timeout in `attempt`): at most 64 s on top of idleTimeout.
 */
const FLOOR_BYTES_PER_SECOND = 128 * 1024;
const MAX_UNSEEN_BYTES = 8 * 1024 * 1024;

const RETRY_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT', 'ECONNABORTED']);
const isRetryableStatus = (status: number) => status === 429 || status >= 500;

export async function makeDirectPut(client: S3Client, o: DirectPutOptions): Promise<DirectPut | undefined> {
  const config = client.config as unknown as ClientConfig;
  const ep = await resolveEndpoint(config, o.bucket);
  const credentials = config.credentials;
  if (!ep || typeof credentials !== 'function') return undefined;
  const maxAttempts = (await config.maxAttempts?.()) ?? 3;
  const tls = ep.url.protocol === 'https:';
  const signPayload = o.signPayload(tls);
  const send = tls ? httpsRequest : httpRequest;
  const agent = tls
    ? (o.agents?.https ?? new HttpsAgent({ keepAlive: true, maxSockets: 50 }))
    : (o.agents?.http ?? new HttpAgent({ keepAlive: true, maxSockets: 50 }));
  const basePath = ep.url.pathname.replace(/\/$/, '');
  const port = ep.url.port ? Number(ep.url.port) : undefined;
  const host = ep.url.hostname.replace(/^\[|\]$/g, ''); // an IPv6 literal without its brackets
  const signer = new SignatureV4({
    service: ep.signingName,
    region: ep.signingRegion,
    credentials: credentials as ConstructorParameters<typeof SignatureV4>[0]['credentials'],
    sha256: Sha256,
    // S3 signs the path as sent (no second encoding), like the SDK's S3 client.
    uriEscapePath: false,
    applyChecksum: false,
  });

  async function attempt(req: DirectPutRequest): Promise<{ etag?: string }> {
    const headers: Record<string, string> = {
      host: ep!.url.host,
      'user-agent': USER_AGENT,
      'content-length': String(req.body.length),
      'x-amz-content-sha256': signPayload
        ? createHash('sha256').update(req.body).digest('hex')
        : 'UNSIGNED-PAYLOAD',
    };
    if (req.contentType) headers['content-type'] = req.contentType;
    for (const [k, v] of Object.entries(req.metadata)) headers[`x-amz-meta-${k.toLowerCase()}`] = v;
    const path = `${basePath}/${encodeKeyPath(req.key)}`;
    const signed = await signer.sign({
      method: 'PUT',
      protocol: ep!.url.protocol,
      hostname: ep!.url.hostname,
      port,
      path,
      query: {},
      headers,
    });
    return new Promise((resolve, reject) => {
      const r = send(
        {
          method: 'PUT',
          host,
          port,
          path,
          headers: signed.headers,
          agent,
          signal: req.signal,
        },
        (res) => void answer(res).then(resolve, reject),
      );
      // Idle means no write dispatched and no byte read for idleTimeout. Once the whole body is handed
      // to the kernel, the bytes still in its buffers (a few MiB on a fast link) drain at the store's
      // pace, unseen: they get time at a floor rate on top, so a slow but moving store is not cut off.
      let allowedMs = o.idleTimeoutMs;
      r.on('timeout', () =>
        r.destroy(new S3RequestTimeoutError(`${req.key}: the store did not answer for ${allowedMs} ms`)),
      );
      r.setTimeout(allowedMs);
      r.on('finish', () => {
        const unseen = Math.min(req.body.length, MAX_UNSEEN_BYTES);
        allowedMs = o.idleTimeoutMs + Math.ceil((unseen / FLOOR_BYTES_PER_SECOND) * 1000);
        r.setTimeout(allowedMs);
      });
      r.on('error', reject);
      writeInSlices(r, req.body);
    });
  }

  return async (req) => {
    for (let n = 1; ; n++) {
      try {
        return await attempt(req);
      } catch (err) {
        if (req.signal?.aborted) throw req.signal.reason instanceof Error ? req.signal.reason : err;
        const e = err as { code?: string; status?: number };
        const retryable =
          err instanceof S3RequestError
            ? isRetryableStatus(err.status)
            : err instanceof S3RequestTimeoutError || RETRY_CODES.has(e.code ?? '');
        if (!retryable || n >= maxAttempts) throw err;
        // As the SDK's standard strategy: full jitter over an exponential base of 100 ms.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(20_000, 100 * 2 ** n)));
      }
    }
  };
}

/**
 * Writes the body a slice at a time, each after the last one drained. A socket's idle timer is
 * refreshed when a write is dispatched: one write of a few MiB into a slow store would look idle
 * for as long as the kernel takes to pass it on, and time out although bytes keep moving.
 */
function writeInSlices(r: import('node:http').ClientRequest, body: Buffer, slice = 64 * 1024) {
  let at = 0;
  const more = () => {
    while (at < body.length) {
      const piece = body.subarray(at, Math.min(at + slice, body.length));
      at += piece.length;
      if (!r.write(piece)) {
        r.once('drain', more);
        return;
      }
    }
    r.end();
  };
  more();
}

/** Reads the answer: the ETag of a 2xx, else an `S3RequestError` with S3's code and message. */
async function answer(res: IncomingMessage): Promise<{ etag?: string }> {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) {
    res.resume();
    await new Promise<void>((resolve, reject) => {
      res.on('end', resolve);
      res.on('error', reject);
    });
    const etag = res.headers.etag;
    return etag ? { etag } : {};
  }
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (bytes < 16 * 1024) chunks.push(chunk);
    bytes += chunk.length;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(text)?.[1];
  const code = tag('Code');
  const message = tag('Message');
  throw new S3RequestError(
    status,
    code,
    `PutObject: HTTP ${status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`,
  );
}
