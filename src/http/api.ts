/**
 * The upload API server (role `api`), on Hono:
 *
 *   POST /asr/async/upload/vela                 a presigned POST for one call (ops/uploads.ts)
 *   POST /asr/async/upload/vela/{id}/complete   optional: the client's POST to the store is done
 *   GET  /openapi.json                          the OpenAPI 3.1 document (from the zod schemas)
 *   GET  /docs                                  the same, as a page
 *   GET  /healthz                               200 while the process is alive
 *
 * Order of checks: bearer token (401) → body size (413) → fields (400, naming the field) → the
 * token's org is the org asked for (403) → rate limit per org (429) → Vela → signature. Every error is
 * JSON `{code, message, field?}` with a stable `code`. An org_id other than the token's gets 403 whether
 * or not such an org exists, so a token cannot be used to find out which orgs exist.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import type { z } from 'zod';
import { toError } from '../errors.js';
import type { Logger } from '../log.js';
import { ApiError, type UploadService } from '../ops/uploads.js';
import type { ApiTokenStore, RateLimiter } from '../ports/api.js';
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

type Vars = { Variables: { org: string } };

const fail = (c: Context, status: number, body: ApiErrorBody, headers: Record<string, string> = {}) =>
  c.json(body, status as 400, headers);

/** `metadata.date_of_call: …` from the first issue; the field is the issue's path. */
function fieldError(err: z.ZodError): ApiError {
  const iss = err.issues[0]!;
  const field = iss.path.map(String).join('.') || 'body';
  if (iss.code === 'unrecognized_keys') {
    const keys = iss.keys.join(', ');
    const at = iss.path.length ? `${field}.` : '';
    return new ApiError(400, 'invalid_field', `${at}${keys}: unknown field`, {
      field: `${at}${iss.keys[0]}`,
    });
  }
  return new ApiError(400, 'invalid_field', `${field}: ${iss.message}`, { field });
}

const tooLarge = (max: number) =>
  new ApiError(413, 'body_too_large', `body: larger than ${max} bytes`, { field: 'body' });

/** A declared Content-Length over the limit is refused before anything is read. */
function checkDeclaredLength(c: Context, max: number): void {
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > max) throw tooLarge(max);
}

/**
 * The body as text, at most `max` bytes (413 beyond, whether declared or chunked). Read straight off
 * Node's request when served by node:http: going through `c.req.raw.body` (hono's bodyLimit does)
 * makes @hono/node-server build a full web `Request` and a web stream per request, which cost more
 * CPU than the rest of a presign.
 */
async function readBody(c: Context, max: number): Promise<string> {
  checkDeclaredLength(c, max);
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming) {
    const buf = Buffer.from(await c.req.arrayBuffer());
    if (buf.length > max) throw tooLarge(max);
    return buf.toString('utf8');
  }
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error) => {
      incoming.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
      if (err) reject(err);
      else
        resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) return done(tooLarge(max));
      chunks.push(chunk);
    };
    const onEnd = () => done();
    const onError = (err: Error) => done(err);
    const onAborted = () => done(new Error('client closed the request'));
    incoming.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
  });
}

/** The request's fields: query string, then the body (JSON or a form) over it. */
async function readFields(c: Context, maxBodyBytes: number): Promise<Record<string, unknown>> {
  const fields: Record<string, unknown> = { ...c.req.query() };
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const text = await readBody(c, maxBodyBytes);
  if (text.trim() !== '') {
    if (type === 'application/json' || type === '' || type.endsWith('+json')) {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new ApiError(400, 'invalid_json', `body: not JSON (${toError(err).message})`, {
          field: 'body',
        });
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new ApiError(400, 'invalid_json', 'body: expected a JSON object', { field: 'body' });
      }
      Object.assign(fields, body);
    } else if (type === 'application/x-www-form-urlencoded') {
      Object.assign(fields, Object.fromEntries(new URLSearchParams(text)));
    } else if (type === 'multipart/form-data') {
      const form = await new Request('http://x/', {
        method: 'POST',
        headers: { 'content-type': c.req.header('content-type')! },
        body: text,
      }).formData();
      for (const [k, v] of form) if (typeof v === 'string') fields[k] = v;
    } else {
      throw new ApiError(
        415,
        'unsupported_media_type',
        `content-type: expected application/json or a form, got ${JSON.stringify(type)}`,
        {
          field: 'content-type',
        },
      );
    }
  }
  // In a form or a query string, metadata is a JSON string.
  if (typeof fields.metadata === 'string') {
    try {
      fields.metadata = JSON.parse(fields.metadata);
    } catch {
      throw new ApiError(
        400,
        'invalid_json',
        'metadata: expected a JSON object such as {"email": …, "date_of_call": …}',
        {
          field: 'metadata',
        },
      );
    }
  }
  return fields;
}

export function makeApiApp(
  opts: Omit<ApiServerOptions, 'host' | 'port'> & { serverUrl?: string },
): Hono<Vars> {
  const log = opts.log.child({ component: 'api' });
  const doc = openApiDocument({
    serverUrl: opts.publicUrl ?? opts.serverUrl,
    maxBodyBytes: opts.maxBodyBytes,
  });
  const page = docsPage(doc);
  const app = new Hono<Vars>();

  app.onError((err, c) => {
    if (err instanceof ApiError) {
      const headers: Record<string, string> =
        err.extra.retryAfterSeconds !== undefined
          ? { 'retry-after': String(err.extra.retryAfterSeconds) }
          : {};
      return fail(
        c,
        err.status,
        {
          code: err.code as ApiErrorBody['code'],
          message: err.message,
          ...(err.extra.field && { field: err.extra.field }),
        },
        headers,
      );
    }
    log.error({ err: toError(err).message, path: c.req.path }, 'api request failed');
    return fail(c, 500, { code: 'internal', message: 'internal error' });
  });
  app.notFound((c) =>
    fail(c, 404, { code: 'not_found', message: `${c.req.method} ${c.req.path}: no such endpoint` }),
  );

  app.get('/healthz', (c) => c.text('ok\n'));
  app.get('/openapi.json', (c) => c.json(doc));
  app.get('/docs', (c) => c.html(page));

  const timed = (route: 'upload' | 'complete') => async (c: Context<Vars>, next: () => Promise<void>) => {
    const started = performance.now();
    await next();
    const status = c.res.status;
    let code = 'ok';
    if (status >= 400) {
      try {
        code = ((await c.res.clone().json()) as { code?: string }).code ?? 'unknown';
      } catch {
        code = 'unknown';
      }
    }
    try {
      opts.onRequest?.({ route, status, code, ms: performance.now() - started });
    } catch {
      // metrics never break a request
    }
  };

  const auth = async (c: Context<Vars>, next: () => Promise<void>) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const org = m ? await opts.tokens.verify(m[1]!) : undefined;
    if (!org) {
      c.header('www-authenticate', 'Bearer realm="ftp-sync"');
      throw new ApiError(
        401,
        'unauthorized',
        header ? 'Authorization: unknown or revoked token' : 'Authorization: a bearer token is required',
        {
          field: 'Authorization',
        },
      );
    }
    c.set('org', org);
    await next();
  };

  // `complete` reads no body: a declared length over the limit is still refused, as for an upload.
  const limit: MiddlewareHandler = async (c, next) => {
    checkDeclaredLength(c, opts.maxBodyBytes);
    await next();
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

  app.post(UPLOAD_PATH, timed('upload'), auth, async (c) => {
    const parsed = uploadRequestSchema.safeParse(await readFields(c, opts.maxBodyBytes));
    if (!parsed.success) throw fieldError(parsed.error);
    const body = parsed.data;
    const org = c.get('org');
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
      c.req.raw.signal,
    );
    return c.json({
      url: grant.url,
      fields: grant.fields,
      upload_id: grant.id,
      key: grant.key,
      expires_at: grant.expiresAt,
      max_size: grant.maxSize,
      voice_id: grant.voiceId,
    });
  });

  app.post(`${UPLOAD_PATH}/:id/complete`, timed('complete'), auth, limit, async (c) => {
    const org = c.get('org');
    await rate(org);
    const done = await opts.uploads.complete(org, c.req.param('id'));
    return c.json({ status: 'completed' as const, key: done.key, size: done.size });
  });

  return app;
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  // The app needs the listening address (for its OpenAPI `servers`): it is made once that is known.
  let listener: ReturnType<typeof getRequestListener> | undefined;
  const server = createServer((req, res) => {
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
