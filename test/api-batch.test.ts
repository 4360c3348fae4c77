/**
 * The third way into the batch pipeline: a zip uploaded through the upload API by an org that has
 * no FTP source (registered by its token alone) is recorded as a call, queued as a batch and
 * expanded by the worker into calls of that org. Real redis-server, s3rver and Vela stand-in; the
 * daemon runs the API and the worker roles together (`all` with an `api:` section).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisApiTokens } from '../src/adapters/redis-api.js';
import type { Daemon } from '../src/main.js';
import { makeRoot, type Root } from '../src/root.js';
import { captureLog, makeTestEnv, type TestEnv } from './support/daemon.js';
import { tempDir, writeFileDeep } from './support/fs.js';
import { getObjectBuffer } from './support/s3.js';
import { waitFor } from './support/wait.js';

const UPLOAD = '/asr/async/upload/vela';

describe('upload API → batch pipeline', () => {
  let env: TestEnv;
  let daemon: Daemon;
  let root: Root;
  let token: string;
  let zip: Buffer;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const files = new Map<string, Buffer>([
    ['calls/a.wav', randomBytes(120_000)],
    ['calls/b.wav', randomBytes(60_000)],
    ['calls/calls.csv', Buffer.from('file,email,date_of_call\na.wav,ann@globex.example,2024-03-05\n')],
  ]);

  beforeAll(async () => {
    env = await makeTestEnv('api-batch', { vela: true, config: { api: { port: 0, rateLimit: 1000 } } });
    dir = await tempDir('api-batch');
    for (const [p, b] of files) await writeFileDeep(dir.path, p, b);
    execFileSync('zip', ['-qr', 'export.zip', 'calls'], { cwd: dir.path });
    zip = await import('node:fs/promises').then((fs) => fs.readFile(join(dir.path, 'export.zip')));
    daemon = await env.start({ s3Credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    token = (await makeRedisApiTokens(env.redis, env.prefix).create('globex')).token;
    root = makeRoot(env.config, captureLog('silent').log, { tenantCacheMs: 0, store: env.store });
  }, 120_000);

  afterAll(async () => {
    await root?.close();
    await env?.stop();
    await dir?.cleanup();
  });

  it('an API-only org uploads a zip: every entry becomes a call of that org, with the archive’s metadata', async () => {
    const api = daemon.api!.url;
    const res = await fetch(`${api}${UPLOAD}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ org_id: 'globex', filename: 'export.zip' }),
    });
    expect(res.status).toBe(200);
    const grant = (await res.json()) as {
      url: string;
      fields: Record<string, string>;
      key: string;
      upload_id: string;
    };
    const form = new FormData();
    for (const [k, v] of Object.entries(grant.fields)) form.append(k, v);
    form.append('file', new Blob([zip], { type: 'application/zip' }), 'export.zip');
    expect((await fetch(grant.url, { method: 'POST', body: form })).status).toBe(204);
    const done = await fetch(`${api}${UPLOAD}/${grant.upload_id}/complete`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(done.status).toBe(200);

    const batch = await waitFor(
      'the uploaded archive expanded',
      async () => {
        const list = await root.batches().list('globex');
        const b = list.find((x) => x.key === grant.key);
        return b && ['done', 'failed', 'parked'].includes(b.state) ? b : undefined;
      },
      60_000,
    );
    expect(batch).toMatchObject({ org: 'globex', via: 'api', state: 'done' });
    for (const [name, bytes] of files) {
      const key = `${grant.key}/${name}`;
      expect(await getObjectBuffer(env.s3.client, env.s3.bucket, key)).toEqual(bytes);
    }
    const a = (await env.store.head(`${grant.key}/calls/a.wav`))!;
    expect(a.metadata).toMatchObject({ org: 'globex', email: 'ann@globex.example' });
  }, 90_000);
});
