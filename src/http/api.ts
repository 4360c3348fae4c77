/**
 * The upload API server (role `api`):
 *
 *   POST /asr/async/upload/vela                 a presigned POST for one call (ops/uploads.ts)
 *   POST /asr/async/upload/vela/{id}/complete   optional: the client's POST to the store is done
 *   GET  /openapi.json                          the OpenAPI 3.1 document (from the zod schemas)
 *   GET  /docs                                  the same, as a page
 *   GET  /healthz                               200 while the process is alive
 *
 * The two POST routes are served straight on node:http (`makeApiHandler`): going through Hono's web
 * `Request`/`Response` bridge cost more CPU per presign than the presign itself (a web Request with
 * its AbortSignal to learn of a client that went away, a web Response with a body stream to answer a
 * few hundred bytes of JSON). Hono serves the rest (`makeApiApp`: documents, health, the JSON 404).
 *
 * Order of checks: bearer token (401) → body size (413) → fields (400, naming the field) → the
 * token's org is the org asked for (403) → rate limit per org (429) → Vela → signature. Every error is
 * JSON `{code, message, field?}` with a stable `code`. An org_id other than the token's gets 403 whether
 * or not such an org exists, so a token cannot be used to find out which orgs exist.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { type Context, Hono } from 'hono';
import { StoreUnavailableError, toError } from '../errors.js';
import type { Logger } from '../log.js';
import { ApiError, type UploadService } from '../ops/uploads.js';
import type { ApiTokenStore, RateLimiter } from '../ports/api.js';
import { checkDeclaredLength, fieldError, readFields } from './api-request.js';
import { type ApiErrorBody, uploadRequestSchema } from './api-schemas.js';
import { docsPage, openApiDocument, UPLOAD_PATH } from './openapi.js';

export interface ApiServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The URL clients use, for the OpenAPI `servers` entry (config `api.publicUrl`). */
  publicUrl?: string;
  maxBodyBytes: number;
  tokens: Pick<ApiTokenStore, 'verify'>;
  rateLimiter: RateLimiter;
  uploads: UploadService;
  log: Logger;
  /** Side channel for metrics: one call per answered request. */
  onRequest?: (r: { route: 'upload' | 'complete'; status: number; code: string; ms: number }) => void;
}

export interface ApiServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Retry-After of a 503 for Redis down: ioredis reconnects within a second or two. */
const STORE_RETRY_AFTER_S = 2;

/** An answer: status, JSON body, extra headers. */
interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

function send(res: ServerResponse, reply: Reply): void {
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...reply.headers,
  });
  res.end(text);
}

/** An error as the client sees it: an ApiError's status and code, anything else a logged 500. */
function errorReply(err: unknown, log: Logger, path: string): Reply & { body: ApiErrorBody } {
  if (err instanceof ApiError) {
    const headers: Record<string, string> = {};
    if (err.extra.retryAfterSeconds !== undefined)
      headers['retry-after'] = String(err.extra.retryAfterSeconds);
    if (err.status === 401) headers['www-authenticate'] = 'Bearer realm="ftp-sync"';
    return {
      status: err.status,
      headers,
      body: {
        code: err.code as ApiErrorBody['code'],
        message: err.message,
        ...(err.extra.field && { field: err.extra.field }),
      },
    };
  }
  if (err instanceof StoreUnavailableError) {
    log.warn({ err: err.message, path }, 'upload api: redis unavailable');
    return {
      status: 503,
      headers: { 'retry-after': String(STORE_RETRY_AFTER_S) },
      body: { code: 'unavailable', message: 'the state store is unavailable; retry later' },
    };
  }
  log.error({ err: toError(err).message, path }, 'api request failed');
  return { status: 500, body: { code: 'internal', message: 'internal error' } };
}

const COMPLETE_SUFFIX = '/complete';

/**
 * The two POST routes on node:http: a function that answers a request it serves and returns true,
 * or returns false (without touching it) for any other request.
 */
export function makeApiHandler(
  opts: Omit<ApiServerOptions, 'host' | 'port' | 'publicUrl'>,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const log = opts.log.child({ component: 'api' });

  const authenticate = async (req: IncomingMessage): Promise<string> => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const org = m ? await opts.tokens.verify(m[1]!) : undefined;
    if (org) return org;
    throw new ApiError(
      401,
      'unauthorized',
      header ? 'Authorization: unknown or revoked token' : 'Authorization: a bearer token is required',
      { field: 'Authorization' },
    );
  };

  const rate = async (org: string) => {
    const r = await opts.rateLimiter.take(org);
    if (!r.ok) {
      throw new ApiError(
        429,
        'rate_limited',
        `org_id ${JSON.stringify(org)}: too many requests; retry later`,
        {
          field: 'org_id',
          retryAfterSeconds: r.retryAfterSeconds,
        },
      );
    }
  };

  const upload = async (org: string, req: IncomingMessage, query: string, signal: AbortSignal) => {
    const parsed = uploadRequestSchema.safeParse(await readFields(req, query, opts.maxBodyBytes));
    if (!parsed.success) throw fieldError(parsed.error);
    const body = parsed.data;
    if (body.org_id !== org) {
      throw new ApiError(
        403,
        'org_forbidden',
        `org_id ${JSON.stringify(body.org_id)}: this token is not for that org`,
        {
          field: 'org_id',
        },
      );
    }
    await rate(org);
    const grant = await opts.uploads.request(
      {
        org,
        ...(body.metadata?.email !== undefined && { email: body.metadata.email }),
        ...(body.metadata?.date_of_call !== undefined && { dateOfCall: body.metadata.date_of_call }),
        ...(body.filename !== undefined && { filename: body.filename }),
        ...(body.content_type !== undefined && { contentType: body.content_type }),
      },
      signal,
    );
    return {
      url: grant.url,
      fields: grant.fields,
      upload_id: grant.id,
      key: grant.key,
      expires_at: grant.expiresAt,
      max_size: grant.maxSize,
      voice_id: grant.voiceId,
    };
  };

  // `complete` reads no body: a declared length over the limit is still refused, as for an upload.
  const complete = async (org: string, req: IncomingMessage, id: string) => {
    checkDeclaredLength(req, opts.maxBodyBytes);
    await rate(org);
    const done = await opts.uploads.complete(org, id);
    return { status: 'completed' as const, key: done.key, size: done.size };
  };

  async function serve(
    route: 'upload' | 'complete',
    req: IncomingMessage,
    res: ServerResponse,
    work: (org: string, signal: AbortSignal) => Promise<unknown>,
  ) {
    const started = performance.now();
    // A client that goes away before its answer aborts the work (the Vela check) it was waiting for.
    const gone = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) gone.abort(new Error('client closed the connection'));
    };
    res.once('close', onClose);
    let reply: Reply;
    let code = 'ok';
    try {
      reply = { status: 200, body: await work(await authenticate(req), gone.signal) };
    } catch (err) {
      const failed = errorReply(err, log, req.url ?? '');
      code = failed.body.code;
      reply = failed;
    }
    send(res, reply);
    // An unread body (an early error) is drained, so a kept-alive connection stays usable.
    if (!req.complete) req.resume();
    try {
      opts.onRequest?.({ route, status: reply.status, code, ms: performance.now() - started });
    } catch {
      // metrics never break a request
    }
  }

  return (req, res) => {
    if (req.method !== 'POST') return false;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path === UPLOAD_PATH) {
      const query = q < 0 ? '' : url.slice(q + 1);
      void serve('upload', req, res, (org, signal) => upload(org, req, query, signal));
      return true;
    }
    if (path.startsWith(`${UPLOAD_PATH}/`) && path.endsWith(COMPLETE_SUFFIX)) {
      const raw = path.slice(UPLOAD_PATH.length + 1, -COMPLETE_SUFFIX.length);
      if (!raw || raw.includes('/')) return false;
      let id: string;
      try {
        id = decodeURIComponent(raw);
      } catch {
        return false;
      }
      void serve('complete', req, res, (org) => complete(org, req, id));
      return true;
    }
    return false;
  };
}

/** Hono, for everything but the two POST routes: the documents, health, and the JSON 404. */
export function makeApiApp(opts: {
  log: Logger;
  publicUrl?: string;
  serverUrl?: string;
  maxBodyBytes: number;
}): Hono {
  const log = opts.log.child({ component: 'api' });
  const doc = openApiDocument({
    serverUrl: opts.publicUrl ?? opts.serverUrl,
    maxBodyBytes: opts.maxBodyBytes,
  });
  const page = docsPage(doc);
  const app = new Hono();
  const fail = (c: Context, status: number, body: ApiErrorBody) => c.json(body, status as 400);
  app.onError((err, c) => {
    const reply = errorReply(err, log, c.req.path);
    return fail(c, reply.status, reply.body);
  });
  app.notFound((c) =>
    fail(c, 404, { code: 'not_found', message: `${c.req.method} ${c.req.path}: no such endpoint` }),
  );
  app.get('/healthz', (c) => c.text('ok\n'));
  app.get('/openapi.json', (c) => c.json(doc));
  app.get('/docs', (c) => c.html(page));
  return app;
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const api = makeApiHandler(opts);
  // The Hono app needs the listening address (for its OpenAPI `servers`): it is made once that is known.
  let listener: ReturnType<typeof getRequestListener> | undefined;
  const server = createServer((req, res) => {
    if (api(req, res)) return;
    if (listener) return listener(req, res);
    res.writeHead(503).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  listener = getRequestListener(makeApiApp({ ...opts, serverUrl: url }).fetch, {
    overrideGlobalObjects: false,
  });
  server.on('error', (err) => opts.log.error({ err: err.message }, 'api http error'));
  opts.log.info({ url, docs: `${url}/docs` }, 'upload api listening');
  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
