/**
 * The upload API against real parts: Redis, s3rver (which stores POSTed objects but does not check
 * POST policies: that is proven against RadosGW in test/interop/api-policy.test.ts), the Vela
 * stand-in, and the platform's own client shapes (Python `requests`, Node `FormData`).
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  makeRedisApiTokens,
  makeRedisPendingUploads,
  makeRedisRateLimiter,
} from '../src/adapters/redis-api.js';
import { stateKey } from '../src/adapters/redis-keys.js';
import { makeS3Presigner } from '../src/adapters/s3-presign.js';
import { parseConfig } from '../src/config.js';
import { startApiServer } from '../src/http/api.js';
import type { Daemon } from '../src/main.js';
import { openOps } from '../src/ops/context.js';
import { getStatus } from '../src/ops/status.js';
import { makeUploadService } from '../src/ops/uploads.js';
import { sineWav } from '../src/sandbox/wav.js';
import { makeTestEnv, type TestEnv } from './support/daemon.js';
import { tempDir } from './support/fs.js';
import { startRedis } from './support/redis.js';

const run = promisify(execFile);
const UPLOAD = '/asr/async/upload/vela';
const S3RVER = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

describe('upload API: presigned POSTs after the allocation check, uploads that become calls', () => {
  let env: TestEnv;
  let daemon: Daemon;
  let api: string;
  let acme: string;
  let other: string;
  let wavPath: string;
  const wav = sineWav({ seconds: 1, frequency: 440 });
  const archives: { org: string; key: string; size: number }[] = [];
  let dir: Awaited<ReturnType<typeof tempDir>>;

  const post = (body: unknown, token: string | null = acme, init: RequestInit = {}) =>
    fetch(`${api}${UPLOAD}`, {
      method: 'POST',
      ...init,
      headers: {
        ...(token !== null && { authorization: `Bearer ${token}` }),
        'content-type': 'application/json',
        ...(init.headers as Record<string, string>),
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  /** The Node client shape: the returned fields, then the file, as multipart/form-data. */
  async function uploadForm(grant: { url: string; fields: Record<string, string> }, file: Buffer) {
    const form = new FormData();
    for (const [k, v] of Object.entries(grant.fields)) form.append(k, v);
    form.append('file', new Blob([file], { type: 'audio/wav' }), 'call.wav');
    return fetch(grant.url, { method: 'POST', body: form });
  }

  beforeAll(async () => {
    env = await makeTestEnv('api', { vela: true, config: { api: { port: 0, rateLimit: 1000 } } });
    daemon = await env.start({
      role: 'api',
      s3Credentials: S3RVER,
      archives: { onArchiveUploaded: async (a) => void archives.push(a) },
    });
    api = daemon.api!.url;
    const tokens = makeRedisApiTokens(env.redis, env.prefix);
    acme = (await tokens.create('acme')).token;
    other = (await tokens.create('globex')).token; // an API-only org: no FTP source
    dir = await tempDir('api-client');
    wavPath = join(dir.path, 'call.wav');
    await writeFile(wavPath, wav);
  }, 60_000);

  afterAll(async () => {
    await env?.stop();
    await dir?.cleanup();
  });

  it('Python requests: JSON in, then a form POST of the fields and a WAV; the object carries the call metadata and the call shows in status', async () => {
    const { stdout } = await run(
      'python3',
      [join(import.meta.dirname, 'clients/upload_requests.py'), wavPath],
      {
        env: {
          ...process.env,
          API_URL: api,
          API_TOKEN: acme,
          ORG_ID: 'acme',
          NO_PROXY: '*',
          FILENAME: 'py-call.wav',
        },
      },
    );
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out).toMatchObject({ api_status: 200, upload_status: 204 });
    const key = out.key as string;
    expect(key).toMatch(/^acme\/api\/[0-9a-f-]{36}\/py-call\.wav$/);
    const head = (await env.store.head(key))!;
    expect(head.size).toBe(wav.length);
    expect(head.metadata).toMatchObject({
      org: 'acme',
      email: 'jane@acme.example',
      'date-of-call': '2024-03-05',
      'voice-id': 'enrolled',
      'metadata-source': 'api',
    });
    // Vela got org_id, email and date_of_call before anything was signed.
    expect(env.vela!.calls().at(-1)).toMatchObject({
      org_id: 'acme',
      email: 'jane@acme.example',
      date_of_call: '2024-03-05',
    });
    const res = await fetch(`${api}${UPLOAD}/${out.upload_id}/complete`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'completed', key, size: wav.length });
    const ctx = openOps(env.config, env.logs.log);
    try {
      const status = await getStatus(ctx, { org: 'acme' });
      expect(status.tenants[0]!.synced).toEqual({ files: 1, bytes: wav.length });
      expect(status.tenants[0]!.metadata.api).toBe(1);
    } finally {
      await ctx.close();
    }
    expect((await env.state.getSynced('acme', key.slice('acme/'.length)))?.key).toBe(key);
    // A second complete (a client retrying): the same answer, recorded once.
    const again = await fetch(`${api}${UPLOAD}/${out.upload_id}/complete`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme}` },
    });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ status: 'completed', key, size: wav.length });
    expect((await env.state.info('acme')).files).toBe(1);
    expect(await daemon.metrics.render()).toMatch(
      /ftpsync_api_uploads_total\{org="acme",outcome="completed"\} 1\n/,
    );
  });

  it('Node FormData: an upload without metadata is found by the sweep (one listing) and counted; the response has the documented lower-case fields', async () => {
    const res = await post({ org_id: 'globex', content_type: 'audio/wav' }, other);
    expect(res.status).toBe(200);
    const grant = (await res.json()) as { url: string; fields: Record<string, string>; key: string };
    expect(Object.keys(grant.fields)).toEqual(
      expect.arrayContaining([
        'key',
        'policy',
        'x-amz-algorithm',
        'x-amz-credential',
        'x-amz-date',
        'x-amz-signature',
      ]),
    );
    // Static credentials: no session token field.
    expect(grant.fields).not.toHaveProperty('x-amz-security-token');
    expect(grant.fields['x-amz-algorithm']).toBe('AWS4-HMAC-SHA256');
    const policy = JSON.parse(Buffer.from(grant.fields.policy!, 'base64').toString('utf8'));
    expect(policy.conditions).toEqual(
      expect.arrayContaining([
        { key: grant.key },
        ['content-length-range', 1, 3 * 1024 ** 3],
        { 'content-type': 'audio/wav' },
      ]),
    );
    const up = await uploadForm(grant, wav);
    expect(up.status).toBe(204);
    const head = (await env.store.head(grant.key))!;
    expect(head.metadata).toMatchObject({ org: 'globex', 'metadata-source': 'none', 'voice-id': 'enrolled' });
    expect(head.metadata).not.toHaveProperty('email');
    expect(env.vela!.calls().at(-1)).toEqual(expect.not.objectContaining({ email: expect.anything() }));
    const swept = await daemon.api!.uploads.sweep();
    expect(swept).toEqual({ completed: 1, expired: 0, tooLarge: 0 });
    expect((await env.state.info('globex')).files).toBe(1);
    expect(await makeRedisPendingUploads(env.redis, env.prefix).list('globex')).toEqual([]);
    const metrics = await daemon.metrics.render();
    expect(metrics).toMatch(/ftpsync_api_uploads_total\{org="globex",outcome="completed"\} 1/);
    expect(metrics).toMatch(/ftpsync_files_synced_total\{org="globex",outcome="api-upload"\} 1/);
  });

  it('complete is idempotent: after the sweep recorded it, twice at once, and 404 only for an id never recorded', async () => {
    const complete = (id: string, token = other) =>
      fetch(`${api}${UPLOAD}/${id}/complete`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
    const grant = (await (await post({ org_id: 'globex', filename: 'twice.wav' }, other)).json()) as {
      upload_id: string;
      key: string;
      url: string;
      fields: Record<string, string>;
    };
    expect((await uploadForm(grant, wav)).status).toBe(204);
    const filesBefore = (await env.state.info('globex')).files;
    // Two at once: one records it; the other answers the same, or 409 while the first is recording.
    const both = await Promise.all([complete(grant.upload_id), complete(grant.upload_id)]);
    for (const res of both) {
      const body = (await res.json()) as Record<string, unknown>;
      if (res.status === 409) expect(body).toMatchObject({ code: 'completion_in_progress', field: 'id' });
      else
        expect([res.status, body]).toEqual([200, { status: 'completed', key: grant.key, size: wav.length }]);
    }
    expect(both.some((r) => r.status === 200)).toBe(true);
    expect((await env.state.info('globex')).files).toBe(filesBefore + 1);
    // Later: the same answer again.
    const later = await complete(grant.upload_id);
    expect(later.status).toBe(200);
    expect(await later.json()).toEqual({ status: 'completed', key: grant.key, size: wav.length });

    // Recorded by the sweep first: complete answers 200 with the same body.
    const swept = (await (
      await post({ org_id: 'globex', filename: 'swept.wav' }, other)
    ).json()) as typeof grant;
    expect((await uploadForm(swept, wav)).status).toBe(204);
    expect((await daemon.api!.uploads.sweep()).completed).toBe(1);
    const afterSweep = await complete(swept.upload_id);
    expect(afterSweep.status).toBe(200);
    expect(await afterSweep.json()).toEqual({ status: 'completed', key: swept.key, size: wav.length });
    expect((await env.state.info('globex')).files).toBe(filesBefore + 2);

    // Another org's token never sees it; an id never handed out, or not an id at all: 404.
    expect((await complete(swept.upload_id, acme)).status).toBe(404);
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-an-id']) {
      const res = await complete(id);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ code: 'upload_not_found', field: 'id' });
    }
    // Signed but never uploaded: still 409 object_missing (pending), not 200.
    const never = (await (await post({ org_id: 'globex' }, other)).json()) as typeof grant;
    const missing = await complete(never.upload_id);
    expect(missing.status).toBe(409);
    expect(await missing.json()).toMatchObject({ code: 'object_missing' });
  });

  it('a zip uploaded through the API is handed to the archive intake once', async () => {
    const res = await post({ org_id: 'acme', filename: 'batch.zip' });
    const grant = (await res.json()) as { url: string; fields: Record<string, string>; key: string };
    expect((await uploadForm(grant, Buffer.from('PK\x05\x06'.padEnd(22, '\0')))).status).toBe(204);
    await daemon.api!.uploads.sweep();
    await daemon.api!.uploads.sweep();
    expect(archives).toEqual([expect.objectContaining({ org: 'acme', key: grant.key, size: 22 })]);
  });

  it('accepts the same fields as a form or in the query string', async () => {
    const form = await fetch(`${api}${UPLOAD}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ org_id: 'acme', metadata: JSON.stringify({ email: 'joe@acme.example' }) }),
    });
    expect(form.status).toBe(200);
    const multipart = new FormData();
    multipart.append('org_id', 'acme');
    multipart.append('metadata', JSON.stringify({ date_of_call: '2024-04-01' }));
    const mp = await fetch(`${api}${UPLOAD}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme}` },
      body: multipart,
    });
    expect(mp.status).toBe(200);
    expect(env.vela!.calls().at(-1)).toMatchObject({ org_id: 'acme', date_of_call: '2024-04-01' });
    const q = await fetch(
      `${api}${UPLOAD}?org_id=acme&metadata=${encodeURIComponent('{"email":"q@acme.example"}')}`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${acme}` },
      },
    );
    expect(q.status).toBe(200);
    expect(env.vela!.calls().at(-1)).toMatchObject({ org_id: 'acme', email: 'q@acme.example' });
  });

  it('401 without a token or with an unknown one, 403 for another org and for an org that does not exist', async () => {
    const none = await post({ org_id: 'acme' }, null);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'unauthorized', field: 'Authorization' });
    const forged = await post({ org_id: 'acme' }, `${acme.slice(0, -4)}AAAA`);
    expect(forged.status).toBe(401);
    const cross = await post({ org_id: 'acme' }, other);
    expect(cross.status).toBe(403);
    expect(await cross.json()).toMatchObject({ code: 'org_forbidden', field: 'org_id' });
    const unknown = await post({ org_id: 'no-such-org' });
    expect(unknown.status).toBe(403);
    expect(await unknown.json()).toMatchObject({ code: 'org_forbidden' });
    // A revoked token is refused at once.
    const tokens = makeRedisApiTokens(env.redis, env.prefix);
    const { token, info } = await tokens.create('acme');
    expect((await post({ org_id: 'acme' }, token)).status).toBe(200);
    await tokens.revoke('acme', info.id);
    expect((await post({ org_id: 'acme' }, token)).status).toBe(401);
  });

  it.each([
    [{}, 'org_id', 'required'],
    [{ org_id: 'acme', metadata: { date_of_call: '31/02/2024' } }, 'metadata.date_of_call', 'date'],
    [{ org_id: 'acme', metadata: { email: 'not an email' } }, 'metadata.email', 'email'],
    [{ org_id: 'acme', metadata: 'x' }, 'metadata', 'JSON'],
    [{ org_id: 'acme', metadata: '{"email": 1}' }, 'metadata.email', 'string'],
    [{ org_id: 'acme', colour: 'red' }, 'colour', 'unknown field'],
    [{ org_id: 'acme', filename: '../x.wav' }, 'filename', 'file name'],
    [{ org_id: 'ACME!' }, 'org_id', 'lower-case'],
  ])('400 naming the field: %j', async (body, field, words) => {
    const before = env.vela!.calls().length;
    const res = await post(body);
    expect(res.status).toBe(400);
    const err = (await res.json()) as { code: string; field: string; message: string };
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
    expect(err.message).toContain(words);
    expect(env.vela!.calls().length).toBe(before); // nothing asked, nothing signed
  });

  it('400 for a body that is not JSON, 413 for one too large', async () => {
    const bad = await post('{"org_id": ');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'invalid_json', field: 'body' });
    const big = await post({ org_id: 'acme', pad: 'x'.repeat(20_000) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: 'body_too_large' });
    // Chunked (no Content-Length): counted as it is read.
    const before = env.vela!.calls().length;
    const chunks = [
      JSON.stringify({ org_id: 'acme', pad: 'x'.repeat(10_000) }).slice(0, -1),
      `,"more":"${'y'.repeat(10_000)}"}`,
    ];
    const chunked = await fetch(`${api}${UPLOAD}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${acme}`, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          for (const part of chunks) c.enqueue(new TextEncoder().encode(part));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(await chunked.json()).toMatchObject({ code: 'body_too_large', field: 'body' });
    expect(env.vela!.calls().length).toBe(before);
  });

  it('allocation exceeded: 403 minute_allocation_exceeded, nothing signed, nothing pending', async () => {
    const pending = makeRedisPendingUploads(env.redis, env.prefix);
    const before = (await pending.list('acme')).length;
    env.vela!.setAllocation('acme', { status: 'exceeded', minutes: 0 });
    try {
      const res = await post({ org_id: 'acme' });
      expect(res.status).toBe(403);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ code: 'minute_allocation_exceeded', field: 'org_id' });
      expect(body).not.toHaveProperty('fields');
      expect((await pending.list('acme')).length).toBe(before);
    } finally {
      env.vela!.setAllocation('acme', { status: 'within' });
    }
  });

  it('Vela down (503) or silent: 503 vela_unavailable with Retry-After, nothing signed', async () => {
    env.vela!.setDown(503);
    try {
      const res = await post({ org_id: 'acme' });
      expect(res.status).toBe(503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await res.json()).toMatchObject({ code: 'vela_unavailable' });
    } finally {
      env.vela!.setDown(false);
    }
    env.vela!.setDown('hang'); // vela.timeout is 2 s in this environment
    try {
      const started = Date.now();
      const res = await post({ org_id: 'acme' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(Date.now() - started).toBeLessThan(6_000);
    } finally {
      env.vela!.setDown(false);
    }
  });

  it('a client that goes away during the Vela check aborts it at once: nothing signed, nothing pending', async () => {
    const pending = makeRedisPendingUploads(env.redis, env.prefix);
    const before = (await pending.list('acme')).length;
    env.vela!.setDown('hang'); // vela.timeout is 2 s in this environment
    try {
      const gone = new AbortController();
      const started = Date.now();
      const res = post({ org_id: 'acme' }, acme, { signal: gone.signal });
      setTimeout(() => gone.abort(), 200);
      await expect(res).rejects.toThrow();
      const aborted = () =>
        env.logs.lines.some(
          (l) => l.includes('vela unavailable') && l.includes('client closed the connection'),
        );
      while (!aborted() && Date.now() - started < 5_000) await new Promise((r) => setTimeout(r, 25));
      // Aborted with the client, well before the 2 s Vela timeout would have ended it.
      expect(aborted()).toBe(true);
      expect(Date.now() - started).toBeLessThan(1_500);
      expect((await pending.list('acme')).length).toBe(before);
    } finally {
      env.vela!.setDown(false);
    }
  });

  it('Redis down: 503 unavailable with Retry-After within the 2 s command timeout, nothing signed; back once Redis is', async () => {
    const own = await startRedis();
    onTestFinished(() => own.stop());
    const d = await env.start({
      role: 'api',
      s3Credentials: S3RVER,
      config: { ...env.config, redis: { ...env.config.redis, url: own.url } },
    });
    const ownRedis = new Redis(own.url, { maxRetriesPerRequest: null }).on('error', () => {});
    onTestFinished(() => void ownRedis.disconnect());
    const token = (await makeRedisApiTokens(ownRedis, env.prefix).create('acme')).token;
    const ask = () =>
      fetch(`${d.api!.url}${UPLOAD}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ org_id: 'acme' }),
      });
    expect((await ask()).status).toBe(200);

    // A hung Redis: every command times out after 2 s.
    own.pause();
    let started = Date.now();
    let down: Response;
    try {
      down = await ask();
    } finally {
      own.resume();
    }
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('2');
    const body = (await down.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ code: 'unavailable' });
    expect(body).not.toHaveProperty('fields');
    expect(Date.now() - started).toBeLessThan(3_500);
    expect(env.logs.lines.some((l) => l.includes('upload api: redis unavailable'))).toBe(true);

    // Back as soon as Redis answers again.
    const until = Date.now() + 10_000;
    let status = 0;
    while (Date.now() < until) {
      status = (await ask()).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe(200);

    // Redis gone (connection refused): 503 at once, not after a timeout.
    await own.down();
    started = Date.now();
    const gone = await ask();
    expect(gone.status).toBe(503);
    expect(await gone.json()).toMatchObject({ code: 'unavailable' });
    expect(Date.now() - started).toBeLessThan(1_500);
    await own.restart({ wipe: false });
    await d.close();
  }, 30_000);

  it('401 names the scheme (WWW-Authenticate: Bearer)', async () => {
    const res = await post({ org_id: 'acme' }, null);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ftp-sync"');
    expect(res.headers.get('content-type')).toBe('application/json');
  });

  it('serves an OpenAPI 3.1 document generated from the schemas, and a docs page', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: a JSON document walked by the assertions
    const doc = (await (await fetch(`${api}/openapi.json`)).json()) as Record<string, any>;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual([UPLOAD, `${UPLOAD}/{id}/complete`]);
    const req = doc.components.schemas.UploadRequest;
    expect(req.required).toEqual(['org_id']);
    expect(Object.keys(req.properties)).toEqual(['org_id', 'metadata', 'filename', 'content_type']);
    expect(Object.keys(req.properties.metadata.properties)).toEqual(['email', 'date_of_call']);
    expect(doc.components.schemas.Error.properties.code.enum).toContain('minute_allocation_exceeded');
    const page = await fetch(`${api}/docs`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain(`POST ${UPLOAD}`);
  });

  it('rate limit per org: over the limit 429 with Retry-After, other orgs unaffected', async () => {
    const server = await startApiServer({
      host: '127.0.0.1',
      port: 0,
      maxBodyBytes: 16_384,
      tokens: makeRedisApiTokens(env.redis, env.prefix),
      rateLimiter: makeRedisRateLimiter(env.redis, `${env.prefix}-rl`, { limit: 2 }),
      uploads: daemon.api!.uploads,
      log: env.logs.log,
    });
    onTestFinished(() => server.close());
    const call = (token: string, org: string) =>
      fetch(`${server.url}${UPLOAD}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ org_id: org }),
      });
    expect((await call(acme, 'acme')).status).toBe(200);
    expect((await call(acme, 'acme')).status).toBe(200);
    const third = await call(acme, 'acme');
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await third.json()).toMatchObject({ code: 'rate_limited' });
    expect((await call(other, 'globex')).status).toBe(200);
    // One counter per org and minute, shared by replicas, gone two windows later.
    const window = Math.floor(Date.now() / 60_000);
    const counters = await Promise.all(
      [window - 1, window].map((w) => env.redis.get(stateKey(`${env.prefix}-rl`, 'acme', `api-rate:${w}`))),
    );
    expect(counters.map(Number).reduce((a, b) => a + b, 0)).toBe(3);
    const key = stateKey(`${env.prefix}-rl`, 'acme', `api-rate:${counters[1] ? window : window - 1}`);
    const ttl = await env.redis.pttl(key);
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(120_000);
  });

  it('role all serves the API only when api.enabled (on once an api: section is given)', async () => {
    const off = await env.start({
      role: 'all',
      config: { ...env.config, api: { ...env.config.api, enabled: false } },
    });
    expect(off.api).toBeUndefined();
    await off.close();
    const on = await env.start({ role: 'all', config: env.config, s3Credentials: S3RVER });
    expect(on.api?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${on.api!.url}/healthz`)).status).toBe(200);
    await on.close();
  });

  it('temporary credentials add x-amz-security-token, pinned in the policy; static ones do not', async () => {
    const s3 = { bucket: 'calls', region: 'eu-west-1', endpoint: 'http://127.0.0.1:1', forcePathStyle: true };
    const input = {
      key: 'acme/api/x/a.wav',
      maxSize: 10,
      expiresAt: new Date(Date.now() + 60_000),
      metadata: {},
    };
    const temp = await makeS3Presigner(s3, async () => ({ ...S3RVER, sessionToken: 'sess-tok' })).presign(
      input,
    );
    expect(temp.fields['x-amz-security-token']).toBe('sess-tok');
    const policy = JSON.parse(Buffer.from(temp.fields.policy!, 'base64').toString('utf8'));
    expect(policy.conditions).toContainEqual({ 'x-amz-security-token': 'sess-tok' });
    expect(temp.fields['x-amz-credential']).toMatch(/^S3RVER\/\d{8}\/eu-west-1\/s3\/aws4_request$/);
    expect(temp.url).toBe('http://127.0.0.1:1/calls');
    const fixed = await makeS3Presigner(s3, async () => S3RVER).presign(input);
    expect(fixed.fields).not.toHaveProperty('x-amz-security-token');
  });

  it('an upload never made is dropped from pending once expired, and counted', async () => {
    const pending = makeRedisPendingUploads(env.redis, env.prefix);
    let clock = Date.now();
    const events: string[] = [];
    const uploads = makeUploadService({
      presigner: makeS3Presigner(
        parseConfig({
          s3: { bucket: env.s3.bucket, endpoint: env.s3.endpoint, forcePathStyle: true },
          vela: { enabled: false },
        }).s3,
        async () => S3RVER,
      ),
      pending,
      tokens: { orgs: async () => ['exp'] },
      state: env.state,
      store: env.store,
      archives: { onArchiveUploaded: async () => {} },
      keyTemplate: '{org}/{path}',
      maxUploadSize: 1024,
      expiryMs: 60_000,
      expiryGraceMs: 0,
      log: env.logs.log,
      now: () => clock,
      onEvent: (_org, e) => events.push(e),
    });
    const grant = await uploads.request({ org: 'exp' });
    expect(await uploads.sweep()).toEqual({ completed: 0, expired: 0, tooLarge: 0 });
    expect((await pending.list('exp')).map((u) => u.id)).toEqual([grant.id]);
    clock += 61_000;
    expect(await uploads.sweep()).toEqual({ completed: 0, expired: 1, tooLarge: 0 });
    expect(await pending.list('exp')).toEqual([]);
    expect(events).toEqual(['signed', 'expired']);
    // A store that ignores the policy's size range (s3rver): an object above the limit is not a call.
    const big = await uploads.request({ org: 'exp' });
    expect((await uploadForm(big, Buffer.alloc(2048))).status).toBe(204);
    expect(await uploads.sweep()).toEqual({ completed: 0, expired: 0, tooLarge: 1 });
    expect(await env.store.head(big.key)).toBeUndefined();
    expect((await env.state.info('exp')).files).toBe(0);
  });
});
