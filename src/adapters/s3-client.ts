/**
 * The daemon's S3 client: `@aws-sdk/client-s3` with its own retry strategy, SigV4 signing, region
 * redirects and endpoint resolution, tuned for many small PutObjects (measured with
 * `bench/put-loop.ts`; README, "S3 upload paths"):
 * - a keep-alive agent per protocol under `@smithy/node-http-handler` (a private CA from
 *   `s3.caFile` on the HTTPS one); no default CRC32 checksums (several S3-compatible stores reject
 *   them);
 * - the middleware stack resolved once per command class (`cacheMiddleware`) instead of on every
 *   request. The SDK uses a cached stack only for a `send` without options, so an abort signal
 *   travels with the command instead (`sendWith`) and the request handler picks it up;
 * - no per-request middleware that does nothing here (`REMOVED_MIDDLEWARE`); a fixed user agent; no
 *   `Expect: 100-continue` header;
 * - over TLS, an in-memory body is signed UNSIGNED-PAYLOAD (no SHA-256 pass over it), unless the
 *   caller knows its SHA-256 (`withPayloadHash`: then that is signed, on any protocol).
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';

/** Sockets per agent: more than the workers' concurrent uploads, each with up to two parts in flight. */
const MAX_SOCKETS = 64;

/**
 * Client middleware that costs CPU on every request and does nothing for this daemon: the trace
 * header of AWS Lambda; a log line per call to a silent logger; the user agent rebuilt per request
 * (replaced by a fixed one). Signing, retries, redirects, endpoints and body checks all stay.
 */
const REMOVED_MIDDLEWARE = [
  'recursionDetectionMiddleware',
  'loggerMiddleware',
  'getUserAgentMiddleware',
] as const;

/** The user agent of every request: a store's logs tell the daemon's requests apart. */
export const USER_AGENT = 'ftp-sync (aws-sdk-js-v3)';

/** Where `sendWith` puts a request's abort signal on the command's input (not serialized). */
const SIGNAL = Symbol('ftp-sync.abortSignal');

type Signalled = { [SIGNAL]?: AbortSignal };

/** Where `withPayloadHash` puts a body's known SHA-256 on the command's input (not serialized). */
const PAYLOAD_SHA256 = Symbol('ftp-sync.payloadSha256');

type Hashed = { [PAYLOAD_SHA256]?: string };

/**
 * Signs the command's in-memory body with its SHA-256 (hex) the caller already computed, sent as
 * `x-amz-content-sha256`: the SDK's signer does not hash the body again (it does over plain HTTP),
 * and the store checks the body against it (also over TLS, where the body would otherwise go
 * UNSIGNED-PAYLOAD). A client other than a `TunedS3Client` hashes the body itself as before.
 */
export function withPayloadHash<C extends { input: object }>(command: C, sha256Hex: string | undefined): C {
  if (sha256Hex) (command.input as Hashed)[PAYLOAD_SHA256] = sha256Hex;
  return command;
}

/** The request handler: node:http(s) with our agents, taking an abort signal from the request too. */
class SignalledHttpHandler extends NodeHttpHandler {
  override handle(...[request, options]: Parameters<NodeHttpHandler['handle']>) {
    const abortSignal = options?.abortSignal ?? (request as Signalled)[SIGNAL];
    return super.handle(request, abortSignal ? { ...options, abortSignal } : options);
  }
}

/**
 * An S3 client with the tuning above that can also tell how many bytes moved on its sockets: the
 * multipart watchdog counts a change as progress (a slow part that is still moving is not a stall).
 */
export class TunedS3Client extends S3Client {
  constructor(
    config: S3ClientConfig,
    private readonly agents: HttpAgent[],
  ) {
    super({ ...config, cacheMiddleware: true });
    const stack = this.middlewareStack;
    for (const name of REMOVED_MIDDLEWARE) stack.remove(name);
    stack.add(
      (next) => (args) => {
        const request = args.request as { headers: Record<string, string> };
        request.headers['user-agent'] = USER_AGENT;
        return next(args);
      },
      { step: 'build', name: 'ftpSyncUserAgent' },
    );
    // Over TLS an in-memory body goes as UNSIGNED-PAYLOAD, as the SDK already sends a stream: TLS
    // protects it in transit. Over plain HTTP the payload hash stays: it is the store's only check
    // that the bytes arrived as sent. The signer takes an `x-amz-content-sha256` already set.
    stack.add(
      (next) => (args) => {
        const request = args.request as {
          protocol?: string;
          body?: unknown;
          headers: Record<string, string>;
        };
        const known = (args.input as Hashed)[PAYLOAD_SHA256];
        if (known) request.headers['x-amz-content-sha256'] = known;
        else if (request.protocol === 'https:' && request.body instanceof Uint8Array) {
          request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        }
        return next(args);
      },
      { step: 'build', name: 'ftpSyncUnsignedPayload' },
    );
    // Last before the handler, on every attempt: the signal given to `sendWith`.
    stack.add(
      (next) => (args) => {
        const signal = (args.input as Signalled)[SIGNAL];
        if (signal) (args.request as Signalled)[SIGNAL] = signal;
        return next(args);
      },
      { step: 'deserialize', priority: 'low', name: 'ftpSyncAbortSignal' },
    );
  }

  /** Bytes written and read on the open sockets of this client's agents. */
  bytesMoved(): number {
    let bytes = 0;
    for (const agent of this.agents) {
      for (const list of Object.values(agent.sockets)) {
        for (const s of (list ?? []) as Socket[]) bytes += s.bytesWritten + s.bytesRead;
      }
    }
    return bytes;
  }
}

/**
 * The options of `client.send(command, options)` for an abort signal: with a `TunedS3Client`, none
 * (the signal goes with the command's input, so the cached middleware stack is kept: the SDK drops
 * its cache for a `send` with options); with any other client, `{ abortSignal }`.
 */
export function abortable(
  client: S3Client,
  command: { input: object },
  signal: AbortSignal | undefined,
): { abortSignal: AbortSignal } | undefined {
  if (!signal) return undefined;
  if (!(client instanceof TunedS3Client)) return { abortSignal: signal };
  (command.input as Signalled)[SIGNAL] = signal;
  return undefined;
}

/**
 * The S3 client of the daemon. Credentials come from the standard AWS chain unless given (tests
 * against s3rver give its fixed ones).
 */
/** The SDK's notice when a request with a streamed body fails (it cannot be retried). */
const STREAMING_NOTICE = /non-retryable streaming request/;

/**
 * The logger given to the SDK. Without one (or with its `NoOpLogger`) the SDK writes some warnings
 * to the console. The notice that a streamed request failed is an expected outcome here: the error
 * itself is thrown to the caller, which retries the job and logs the reason; so it goes to debug.
 * Any other warning or error the SDK logs goes to `log` (or stderr when there is none), not dropped.
 */
export function sdkLogger(log?: Logger) {
  const other =
    (level: 'warn' | 'error') =>
    (...args: unknown[]) => {
      const text = args.map((a) =>
        typeof a === 'string' ? a : a instanceof Error ? a.message : JSON.stringify(a),
      );
      if (level === 'warn' && STREAMING_NOTICE.test(text.join(' '))) {
        log?.debug({ source: 'aws-sdk' }, text.join(' '));
        return;
      }
      if (log) log[level]({ source: 'aws-sdk' }, text.join(' '));
      else process.stderr.write(`aws-sdk ${level}: ${text.join(' ')}\n`);
    };
  // The SDK logs every failed command at `error` (a HEAD's expected 404 included) and then throws the
  // same error to the caller, which decides what it means: debug only.
  const failed = (...args: unknown[]) =>
    log?.debug(
      { source: 'aws-sdk' },
      args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '),
    );
  return { trace() {}, debug() {}, info() {}, warn: other('warn'), error: failed };
}

export function makeS3Client(
  cfg: Config['s3'],
  opts: { credentials?: { accessKeyId: string; secretAccessKey: string }; log?: Logger } = {},
): TunedS3Client {
  let ca: Buffer | undefined;
  if (cfg.caFile) {
    try {
      ca = readFileSync(cfg.caFile);
    } catch (err) {
      throw new Error(`s3.caFile: cannot read ${cfg.caFile}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...(ca && { ca }) });
  return new TunedS3Client(
    {
      ...(opts.credentials && { credentials: opts.credentials }),
      region: cfg.region,
      endpoint: cfg.endpoint,
      forcePathStyle: cfg.forcePathStyle,
      // A bucket in another region answers 301 with x-amz-bucket-region: the SDK re-resolves the
      // endpoint and signs again for that region instead of failing.
      followRegionRedirects: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // No `Expect: 100-continue` on bodies of 2 MiB and more (the SDK's default): with agents of our
      // own the SDK sends the body at once anyway, so the header only makes the store answer an interim
      // 100 first. Without it, S3 write alone on RGW, 500 × 2 MiB: 4.19 → 2.88 CPU s/GiB, 136 → 170 MiB/s.
      expectContinueHeader: false,
      maxAttempts: 3,
      logger: sdkLogger(opts.log),
      // Every request (HEAD, PUT, each part) fails when its socket is silent for idleTimeout: a store
      // that stops answering never hangs a worker. The deadline resets with every byte.
      requestHandler: new SignalledHttpHandler({
        httpAgent,
        httpsAgent,
        connectionTimeout: Math.min(cfg.idleTimeout, 10_000),
        socketTimeout: cfg.idleTimeout,
      }),
    },
    [httpAgent, httpsAgent],
  );
}
