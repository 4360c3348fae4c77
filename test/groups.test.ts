/**
 * Group sync jobs: a poll's small files travel in groups (one BullMQ job, one session, many files),
 * each file still its own version with its own sync state, uploaded once; a file the group cannot
 * finish goes on as a job of its own; the poll and resync see grouped versions as queued.
 */
import { randomBytes } from 'node:crypto';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisBudget } from '../src/adapters/redis-budget.js';
import { type Config, parseConfig } from '../src/config.js';
import type { Daemon } from '../src/main.js';
import { GROUP_MAX_BYTES, GROUP_MAX_FILE, groupMarkerKey, planGroups } from '../src/queue/enqueue.js';
import { POLL_QUEUE, parseJobId, SYNC_QUEUE, versionJobId } from '../src/queue/jobs.js';
import { makeSyncJobs } from '../src/queue/sync-jobs.js';
import type { RemoteFile } from '../src/types.js';
import { makeTestEnv, type TestEnv, waitIdle } from './support/daemon.js';
import { redisUrl, uniquePrefix } from './support/env.js';
import { sha256, writeFileDeep } from './support/fs.js';
import { getObjectBuffer } from './support/s3.js';
import { waitFor } from './support/wait.js';

const file = (path: string, size: number): RemoteFile => ({ path, size, mtime: 'm', mtimeExact: true });
const many = (n: number, size = 1000, dir = 'calls') =>
  Array.from({ length: n }, (_, i) => file(`${dir}/c-${i}.wav`, size));

describe('planGroups', () => {
  it('spreads small files over at least as many groups as the tenant has slots, at most maxFiles each', () => {
    expect(planGroups(many(20), 5, 50).map((u) => u.length)).toEqual([4, 4, 4, 4, 4]);
    expect(planGroups(many(3), 5, 50).map((u) => u.length)).toEqual([1, 1, 1]);
    expect(planGroups(many(120), 2, 50).map((u) => u.length)).toEqual([50, 50, 20]);
    // Grouping off: a job each.
    expect(planGroups(many(4), 1, 1).map((u) => u.length)).toEqual([1, 1, 1, 1]);
  });

  it('gives large files a job each, caps a group in bytes and puts call records first', () => {
    const files = [
      file('calls/big.wav', GROUP_MAX_FILE + 1),
      ...many(12, 6 * 1024 * 1024),
      file('records/r.csv', 100),
    ];
    const units = planGroups(files, 1, 50);
    // 64 MiB a group: the call record and ten 6 MiB files, then the other two; the large one alone.
    expect(units.map((u) => u.length)).toEqual([11, 2, 1]);
    expect(units[0]![0]!.path).toBe('records/r.csv');
    expect(units.at(-1)![0]!.path).toBe('calls/big.wav');
    for (const u of units.slice(0, -1)) {
      expect(u.reduce((n, f) => n + f.size, 0)).toBeLessThanOrEqual(GROUP_MAX_BYTES);
    }
    // Every file exactly once.
    expect(
      units
        .flat()
        .map((f) => f.path)
        .sort(),
    ).toEqual(files.map((f) => f.path).sort());
  });
});

describe('the queue side of groups (real Redis)', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function setup() {
    const prefix = uniquePrefix('groups');
    const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const sync = new Queue(SYNC_QUEUE, { connection: redis, prefix });
    const poll = new Queue(POLL_QUEUE, { connection: redis, prefix });
    closers.push(
      () => redis.quit(),
      () => sync.close(),
      () => poll.close(),
      async () => {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length) await redis.del(...keys);
      },
    );
    const config = parseConfig({ s3: { bucket: 'b' }, vela: { enabled: false }, tenants: [] }) as Config;
    return { redis, sync, prefix, jobs: makeSyncJobs(sync, poll, config, redis) };
  }

  it('a grouped version is pending while its group exists; a marker left by a group that is gone is not', async () => {
    const { redis, sync, jobs } = await setup();
    const files = many(6);
    const ids = await jobs.enqueue('acme', files, { connections: 2 });
    expect(ids).toHaveLength(2);
    expect(ids.map((id) => parseJobId(id))).toEqual([
      { org: 'acme', forced: false, files: 3 },
      { org: 'acme', forced: false, files: 3 },
    ]);
    const other = file('calls/new.wav', 5);
    expect(await jobs.pending('acme', [...files, other])).toEqual([
      true,
      true,
      true,
      true,
      true,
      true,
      false,
    ]);
    // The operations see a grouped version as its group's state, with its own data.
    const view = await jobs.get(versionJobId('acme', files[4]!));
    expect(view).toMatchObject({ state: 'prioritized', data: { org: 'acme', path: 'calls/c-4.wav' } });
    // A group removed (by hand, or never added after its markers were written) holds nothing back.
    await (await sync.getJob(ids[0]!))!.remove();
    expect(await jobs.pending('acme', files)).toEqual([false, false, false, true, true, true]);
    expect(await jobs.get(versionJobId('acme', files[0]!))).toBeUndefined();
    expect(await redis.hlen(groupMarkerKey(sync, 'acme'))).toBe(6);
  });

  it('a group that failed for good holds none of its files: resync finds no job and queues them anew', async () => {
    const { redis, prefix, jobs } = await setup();
    const files = many(4);
    await jobs.enqueue('acme', files, { connections: 1 });
    const id = versionJobId('acme', files[1]!);
    expect(await jobs.get(id)).toMatchObject({ state: 'prioritized' });
    const connection = redis.duplicate({ maxRetriesPerRequest: null });
    const worker = new Worker(
      SYNC_QUEUE,
      async () => {
        throw new UnrecoverableError('stalled twice');
      },
      { connection, prefix },
    );
    closers.push(
      () => connection.quit(),
      () => worker.close(),
    );
    await waitFor('the group failed', async () => (await jobs.counts()).sync.failed === 1);
    expect(await jobs.get(id)).toBeUndefined();
    expect((await jobs.failed(10))[0]?.data.path).toBe('calls/c-0.wav (and 3 more in its group)');
  });

  it('resync batches and forced resyncs are never grouped', async () => {
    const { jobs } = await setup();
    expect(await jobs.enqueue('acme', many(4), { batch: 'b1', connections: 2 })).toHaveLength(4);
    expect(await jobs.enqueue('acme', many(4), { force: true, batch: 'b2', connections: 2 })).toHaveLength(4);
    // Without the tenant's slot count (not from a poll) neither.
    expect(await jobs.enqueue('acme', many(3, 7), {})).toHaveLength(3);
  });
});

describe('group jobs in the daemon', () => {
  let env: TestEnv;
  let daemon: Daemon;
  const hashes = new Map<string, string>();

  beforeAll(async () => {
    env = await makeTestEnv('groups', {
      vela: true,
      tenant: { maxConnections: 2, maxFileSize: 200_000 },
    });
    for (let i = 0; i < 40; i++) {
      const w = await writeFileDeep(env.root, `calls/a-${i}.wav`, randomBytes(1_000 + i * 977));
      hashes.set(`calls/a-${i}.wav`, w.sha256);
    }
    daemon = await env.start();
  }, 60_000);
  afterAll(async () => {
    await env?.stop();
  });

  /** A poll now (the scheduler's own first poll may hold the tenant's poll lock for a moment). */
  const poll = () =>
    waitFor('a poll of acme', async () => {
      const outcome = await daemon.poller!.pollNow('acme');
      return outcome.kind === 'skipped' ? undefined : outcome;
    });
  const puts = (key: string) =>
    env.s3
      .requests()
      .filter((r) => r.method === 'PUT' && r.status < 300 && decodeURIComponent(r.path).includes(key)).length;

  it('a poll adds its small files as one group per slot; each is uploaded once, intact, on few logins', async () => {
    await poll();
    const loginsBefore = env.ftp.loginAttempts().length;
    expect(await poll()).toMatchObject({ kind: 'done', enqueued: 40 });
    const counts = await waitIdle(daemon.syncQueue, 60_000);
    expect(counts.failed).toBe(0);
    for (const [path, hash] of hashes) {
      expect(sha256(await getObjectBuffer(env.s3.client, env.s3.bucket, `acme/${path}`)), path).toBe(hash);
      expect(puts(`acme/${path}`), path).toBe(1);
    }
    expect((await env.state.allSynced('acme')).size).toBe(40);
    // Two sessions carried 40 files (the poll's listing session may be one of them).
    expect(env.ftp.loginAttempts().length - loginsBefore).toBeLessThanOrEqual(2);
    // Every finished group forgot its markers.
    expect(await env.redis.hlen(groupMarkerKey(daemon.syncQueue, 'acme'))).toBe(0);
    // Status counted nothing left, and a poll now adds nothing.
    expect(await poll()).toMatchObject({ enqueued: 0, unchanged: 40 });
  }, 90_000);

  it('a file a group cannot finish goes on as a job of its own; the rest of its group is uploaded', async () => {
    // One too large for the tenant (fails for good), one the server refuses for now (451: retried).
    await writeFileDeep(env.root, 'calls/b-big.wav', randomBytes(300_000));
    await writeFileDeep(env.root, 'calls/b-flaky.wav', randomBytes(5_000));
    for (let i = 0; i < 6; i++) await writeFileDeep(env.root, `calls/b-${i}.wav`, randomBytes(2_000 + i));
    env.ftp.faults.failRetr = { path: /b-flaky/, code: 451 };
    await poll();
    expect(await poll()).toMatchObject({ enqueued: 8 });
    await waitFor('the failing files on jobs of their own', async () => {
      const failed = await daemon.syncQueue.getFailed();
      const delayed = await daemon.syncQueue.getDelayed();
      return (
        failed.some((j) => j.failedReason?.includes('maxFileSize')) &&
        delayed.some(
          (j) => j.id?.startsWith('v-acme-') && (j.data as { path?: string }).path === 'calls/b-flaky.wav',
        ) &&
        [0, 1, 2, 3, 4, 5].every((i) => puts(`acme/calls/b-${i}.wav`) > 0)
      );
    });
    for (let i = 0; i < 6; i++) expect(puts(`acme/calls/b-${i}.wav`), `b-${i}`).toBe(1);
    const failed = await daemon.syncQueue.getFailed();
    expect(failed.map((j) => j.failedReason)).toEqual([
      expect.stringMatching(/b-big\.wav: 300000 bytes .*maxFileSize/),
    ]);
    expect(failed[0]!.id).toMatch(/^v-acme-/);
    // The flaky one syncs once the server serves it.
    env.ftp.faults.failRetr = undefined;
    await waitFor('b-flaky.wav in S3', async () => puts('acme/calls/b-flaky.wav') === 1, 30_000);
  }, 90_000);

  it('a group whose tenant has no free slot goes back to the queue whole, asks Vela nothing, and syncs once one frees', async () => {
    for (let i = 0; i < 6; i++) await writeFileDeep(env.root, `calls/c-${i}.wav`, randomBytes(3_000 + i));
    // The worker takes nothing while the files are queued and the slots taken.
    await daemon.worker!.worker.pause();
    await poll();
    const calls = env.vela!.calls().length;
    expect(await poll()).toMatchObject({ enqueued: 6 });
    // Another replica takes both of the tenant's slots (once this process's idle sessions closed).
    const other = makeRedisBudget(env.redis, env.prefix);
    const held: string[] = [];
    await waitFor('both slots held elsewhere', async () => {
      const id = await other.tryAcquire('acme', 2);
      if (typeof id === 'string') held.push(id);
      return held.length === 2;
    });
    daemon.worker!.worker.resume();
    await new Promise((r) => setTimeout(r, 2_000));
    const groups = await daemon.syncQueue.getJobs(['delayed', 'waiting', 'prioritized', 'active']);
    expect(groups.map((j) => parseJobId(j.id ?? '')?.files)).toEqual([3, 3]);
    expect(groups.every((j) => j.attemptsMade === 0 && j.attemptsStarted >= 2)).toBe(true);
    expect(env.vela!.calls().length).toBe(calls);
    for (const h of held) await other.release('acme', h);
    other.close();
    await waitIdle(daemon.syncQueue, 30_000);
    for (let i = 0; i < 6; i++) expect(puts(`acme/calls/c-${i}.wav`), `c-${i}`).toBe(1);
    expect(env.vela!.calls().length).toBe(calls + 6);
  }, 60_000);
});
