/**
 * The compact sync-state layout (adapters/redis-compact.ts) against a real redis-server: what a
 * tracked version costs in Redis memory, that every bucket keeps Redis's packed encoding, and that
 * state written in the old layout (one hash of JSON per tenant) is moved in on start with nothing
 * uploaded again.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateKey } from '../src/adapters/redis-keys.js';
import { makeTestEnv, waitIdle } from './support/daemon.js';
import { writeFileDeep } from './support/fs.js';
import { describeStateMemory, keysOf } from './support/state-memory.js';

describeStateMemory(20_000);

describe('upgrade from the old layout (one hash of JSON records per tenant)', () => {
  const files = Array.from({ length: 30 }, (_, i) => `calls/agent ${i % 3}/call-${i}.wav`);
  let env: Awaited<ReturnType<typeof makeTestEnv>>;
  beforeAll(async () => {
    env = await makeTestEnv('state-upgrade');
    for (const f of files) await writeFileDeep(env.root, f, randomBytes(2_000));
  }, 60_000);
  afterAll(async () => {
    await env?.stop();
  });

  it('state written in the old layout: the daemon moves it on start and uploads nothing again', async () => {
    const first = await env.start();
    await first.poller!.pollNow('acme');
    expect(await first.poller!.pollNow('acme')).toMatchObject({ enqueued: files.length });
    await waitIdle(first.syncQueue);
    const synced = await env.state.allSynced('acme');
    expect(synced.size).toBe(files.length);
    const info = await env.state.info('acme');
    await first.close();

    // Rewrite the tenant's state as the previous release kept it: path → SyncRecord JSON (ETag too).
    for (const key of await keysOf(env.redis, `${env.prefix}:{acme}:sv:*`)) await env.redis.del(key);
    await env.redis.del(stateKey(env.prefix, 'acme', 'lh'));
    const old = stateKey(env.prefix, 'acme', 'synced');
    for (const [p, rec] of synced) await env.redis.hset(old, p, JSON.stringify({ ...rec, etag: '"0123"' }));
    expect(await env.state.allSynced('acme')).toEqual(new Map());

    const putsBefore = env.s3.requests().filter((r) => r.method === 'PUT').length;
    const headsBefore = env.s3.requests().filter((r) => r.method === 'HEAD').length;
    const second = await env.start();
    expect(await env.redis.exists(old)).toBe(0);
    expect(env.logs.text()).toContain('sync state moved to the compact layout');
    expect(await env.state.allSynced('acme')).toEqual(synced);
    expect(await second.poller!.pollNow('acme')).toMatchObject({ enqueued: 0, unchanged: files.length });
    expect(await second.poller!.pollNow('acme')).toMatchObject({ enqueued: 0, unchanged: files.length });
    await waitIdle(second.syncQueue);
    expect(env.s3.requests().filter((r) => r.method === 'PUT').length).toBe(putsBefore);
    expect(env.s3.requests().filter((r) => r.method === 'HEAD').length).toBe(headsBefore);
    // The counters are untouched: nothing counted twice.
    expect((await env.state.info('acme')).files).toBe(info.files);
  }, 120_000);
});
