/**
 * The same sync job run twice at once: what happens when a worker loses its job lock (a long GC
 * pause, Redis out of reach past `lockDuration`) and the stalled check hands the job to another
 * worker while the first is still transferring. Invariant 2 must hold anyway: one object for the
 * version, intact, with its metadata, and the version counted once in sync state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeRedisBudget } from '../src/adapters/redis-budget.js';
import { makeTenantStore } from '../src/adapters/redis-tenants.js';
import { connectSource } from '../src/adapters/source.js';
import { makeCredentialCache } from '../src/sync/credentials.js';
import type { SyncJobDeps } from '../src/sync/job-types.js';
import { makeSessionPool } from '../src/sync/pool.js';
import { runSyncJob } from '../src/sync/sync-job.js';
import { makeTestEnv, type TestEnv } from './support/daemon.js';
import { sha256, writeFileDeep } from './support/fs.js';
import { getObjectBuffer, listAll } from './support/s3.js';

let env: TestEnv | undefined;
const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await env?.stop();
  env = undefined;
});

function depsFor(e: TestEnv): SyncJobDeps {
  const tenants = makeTenantStore(e.redis, e.config);
  const budget = makeRedisBudget(e.redis, e.prefix);
  const pool = makeSessionPool({
    budget,
    credentials: makeCredentialCache(tenants.credentials, 60_000),
    connect: (t, c) => connectSource(t, c, { timeoutMs: 5_000 }),
    log: e.logs.log,
  });
  closers.push(
    () => pool.closeAll(),
    () => budget.close(),
  );
  return {
    tenants,
    state: e.state,
    store: e.store,
    pool,
    keyTemplate: e.config.s3.keyTemplate,
    multipartThreshold: e.config.s3.multipartThreshold,
    log: e.logs.log,
  };
}

describe('one job run by two workers at once (a lost lock)', () => {
  it.each([
    ['a single PutObject', 300_000],
    ['a multipart upload', 12 * 1024 * 1024],
  ])('%s: one object, intact, counted once', async (_what, size) => {
    env = await makeTestEnv('double-run');
    const written = await writeFileDeep(env.root, 'calls/twice.wav', size);
    // The version as a listing gives it (mtime in the server's own format).
    const session = await connectSource(env.config.tenants[0]!, {
      user: 'acme',
      password: env.config.tenants[0]!.ftp!.password!,
    });
    const entry = (await session.list('/calls')).find((e) => e.name === 'twice.wav')!;
    session.close();
    const job = { org: 'acme', path: 'calls/twice.wav', size: entry.size, mtime: entry.mtime };
    const ctx = { jobId: 'v-acme-twice', attempt: 0, firstRun: true, queuedAt: Date.now() };

    // Two workers, each with its own pool (two replicas), on the same job at the same moment.
    const [a, b] = await Promise.all([
      runSyncJob(depsFor(env), job, ctx),
      runSyncJob(depsFor(env), job, ctx),
    ]);
    expect([a.kind, b.kind]).toEqual(['done', 'done']);

    const objects = await listAll(env.s3.directClient, env.s3.bucket, 'acme/');
    expect(objects.map((o) => o.key)).toEqual(['acme/calls/twice.wav']);
    expect(sha256(await getObjectBuffer(env.s3.directClient, env.s3.bucket, 'acme/calls/twice.wav'))).toBe(
      written.sha256,
    );
    const head = await env.store.head('acme/calls/twice.wav');
    expect(head?.metadata).toMatchObject({ 'source-size': String(size), 'source-mtime': entry.mtime });
    const info = await env.state.info('acme');
    expect([info.files, info.bytes]).toEqual([1, size]);
    expect((await env.state.getSynced('acme', 'calls/twice.wav'))?.size).toBe(size);
  });
});
