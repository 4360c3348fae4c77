/**
 * Scale-out: three daemon processes (real child processes, `ftp-sync start`) against one Redis, 20
 * tenants with 100 files each on one FTP server (each tenant its own user and directory), one S3
 * server. One replica is killed with SIGKILL in the middle of the run.
 *
 * What is checked, each from the outside:
 * - every file becomes exactly one object, intact: one successful PutObject per key as the S3 server
 *   received them, and every object's ETag (MD5) equals the file's;
 * - no tenant's connection budget (maxConnections: 2) is exceeded at any moment: the FTP server
 *   counts each user's logged-in sessions;
 * - polls of a tenant never overlap: every finished poll logs its duration, and the intervals of one
 *   tenant, from all replicas' logs, are disjoint (listings are slowed down past the poll interval,
 *   so without the poll lock they would overlap);
 * - killing a replica loses nothing: its active jobs stall, BullMQ hands them to the others, and
 *   every job completes; none fails.
 */
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisState } from '../../src/adapters/redis-state.js';
import { SYNC_QUEUE } from '../../src/queue/jobs.js';
import { completedFiles } from '../support/daemon.js';
import { redisUrl, uniquePrefix } from '../support/env.js';
import { type TempDir, tempDir } from '../support/fs.js';
import {
  type DaemonProcess,
  type LogLine,
  spawnDaemon,
  started as startedLog,
  stopAllDaemons,
  writeConfigFile,
} from '../support/process.js';
import { type S3TestServer, startS3 } from '../support/s3.js';
import { type Corpus, daemonConfig, listObjects, makeCorpus, putsByKey } from './corpus.js';
import { waitFor } from './helpers.js';

const TENANTS = 20;
const FILES_PER_TENANT = 100;
const TOTAL = TENANTS * FILES_PER_TENANT;
const MAX_CONNECTIONS = 2;

describe('scale-out: 3 replicas, 20 tenants, 2,000 files, one replica killed mid-run', () => {
  let dir: TempDir;
  let corpus: Corpus;
  let s3: S3TestServer;
  let redis: Redis;
  let queue: Queue;
  let events: QueueEvents;
  const prefix = uniquePrefix('scale-replicas');
  const replicas: DaemonProcess[] = [];
  let stalled = 0;
  let killedAtPuts = 0;
  let seconds = 0;

  beforeAll(async () => {
    dir = await tempDir('scale-replicas');
    corpus = await makeCorpus(`${dir.path}/ftp`, {
      tenants: TENANTS,
      filesPerTenant: FILES_PER_TENANT,
      size: (i) => 2_000 + ((i * 7919) % 30_000),
    });
    // A poll lists 7 directories; at 400 ms each it takes longer than the poll interval (2 s): the job
    // scheduler then starts the next poll of a tenant while the current one still runs (bullmq#3032),
    // which the poll lock must stop. Slow listings last until enough such polls were refused.
    corpus.ftp.faults.listDelayMs = 400;
    s3 = await startS3();
    redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    queue = new Queue(SYNC_QUEUE, { connection: redis, prefix });
    events = new QueueEvents(SYNC_QUEUE, { connection: redis.duplicate(), prefix });
    events.on('stalled', () => stalled++);
    await events.waitUntilReady();
  });

  afterAll(async () => {
    await stopAllDaemons();
    await Promise.allSettled([events?.close(), queue?.close()]);
    if (redis) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    }
    await Promise.allSettled([corpus?.ftp.stop(), s3?.stop()]);
    await dir?.cleanup();
  });

  it('syncs every file exactly once within every budget, and survives a SIGKILLed replica', async () => {
    const configFile = await writeConfigFile(
      dir.path,
      daemonConfig({
        redis: { url: redisUrl(), prefix },
        s3,
        corpus,
        extra: {
          defaults: { pollInterval: '2s', minFileAge: '1ms', maxConnections: MAX_CONNECTIONS },
          // Short locks so the killed replica's jobs come back within seconds, not a minute.
          worker: { concurrency: 8, lockDuration: '10s', stalledInterval: '3s', keepCompleted: '1h' }, // completed jobs counted
          log: { level: 'debug' },
        },
      }),
    );
    const started = Date.now();
    replicas.push(
      ...['replica-a', 'replica-b', 'replica-c'].map((name) => spawnDaemon({ name, config: configFile })),
    );
    await Promise.all(replicas.map((r) => startedLog(r)));
    const puts = () => [...putsByKey(s3).values()].reduce((a, b) => a + b, 0);
    const refused = () =>
      replicas.flatMap((r) => r.lines()).filter((l) => l.msg.startsWith('poll skipped: another poll')).length;
    // Back to full-speed listings once 20 overlapping polls were refused: slow polls hold one of each
    // tenant's two connection slots most of the time, which only slows the transfers down.
    // (A timeout here is not an error of its own: the count is asserted below.)
    const fastListings = waitFor('20 overlapping polls refused', () => refused() >= 20, 120_000)
      .catch(() => {})
      .finally(() => {
        corpus.ftp.faults.listDelayMs = 0;
      });

    // Kill one replica while transfers are in full swing and it holds active jobs.
    const victim = replicas[1]!;
    await waitFor('a third of the files in S3', () => puts() >= TOTAL / 3, 120_000);
    killedAtPuts = puts();
    const killedAt = (Date.now() - started) / 1000;
    victim.kill('SIGKILL');
    await victim.waitExit();
    await fastListings;

    const counts = await waitFor(
      'every sync job completed',
      async () => {
        const c = await queue.getJobCounts(
          'waiting',
          'active',
          'delayed',
          'prioritized',
          'completed',
          'failed',
        );
        return !c.waiting &&
          !c.active &&
          !c.delayed &&
          !c.prioritized &&
          (await completedFiles(queue)) >= TOTAL
          ? c
          : undefined;
      },
      180_000,
      500,
    );
    seconds = (Date.now() - started) / 1000;
    expect(counts).toMatchObject({ failed: 0 });
    expect(await completedFiles(queue)).toBe(TOTAL);

    // Exactly one object per file, intact: one successful PUT per key, MD5 = ETag.
    const objects = await listObjects(s3, corpus.orgs);
    expect(objects.map((o) => o.key).sort()).toEqual([...corpus.files.keys()].sort());
    for (const o of objects) expect(o.etag.replace(/"/g, ''), o.key).toBe(corpus.files.get(o.key)!.md5);
    const byKey = putsByKey(s3);
    const twice = [...byKey].filter(([, n]) => n !== 1);
    expect(twice).toEqual([]);
    expect(byKey.size).toBe(TOTAL);

    // Sync state: every path of every tenant recorded once.
    const state = makeRedisState(redis, prefix);
    for (const org of corpus.orgs) expect((await state.allSynced(org)).size, org).toBe(FILES_PER_TENANT);

    // Invariant 5, as the FTP server saw it: no user ever had more than maxConnections sessions.
    const perUser = corpus.ftp.maxConcurrentLoginsByUser();
    expect(Object.keys(perUser).sort()).toEqual([...corpus.orgs].sort());
    for (const [user, max] of Object.entries(perUser)) expect(max, user).toBeLessThanOrEqual(MAX_CONNECTIONS);
    // ...and the budget was used, not just respected by idling.
    expect(Math.max(...Object.values(perUser))).toBe(MAX_CONNECTIONS);

    // Invariant 6: the polls of one tenant, from every replica's log, never overlap.
    const logs = replicas.flatMap((r) => r.lines());
    const polls = pollIntervals(logs);
    for (const [org, intervals] of polls) {
      intervals.sort((a, b) => a.start - b.start);
      for (let i = 1; i < intervals.length; i++) {
        expect(
          intervals[i]!.start,
          `${org}: poll ${i} starts before poll ${i - 1} ended`,
        ).toBeGreaterThanOrEqual(intervals[i - 1]!.end);
      }
    }
    expect(polls.size).toBe(TENANTS);
    // The guard was needed: polls started while another poll of the tenant ran, and were skipped.
    const skipped = refused();
    expect(skipped).toBeGreaterThanOrEqual(20);

    // The killed replica's jobs were handed over (stalled), not lost.
    expect(stalled).toBeGreaterThan(0);

    // The survivors shut down cleanly.
    const survivors = replicas.filter((r) => r !== victim);
    for (const r of survivors) r.kill('SIGTERM');
    const codes = await Promise.all(survivors.map(async (r) => (await r.waitExit(60_000)).code));
    expect(codes).toEqual([0, 0]);

    console.log(
      `scale-out: ${TOTAL} files in ${seconds.toFixed(1)} s with 3 replicas (one SIGKILLed after ${killedAtPuts} PUTs, at ${killedAt.toFixed(1)} s); ` +
        `${stalled} stalled job(s) recovered; ${skipped} overlapping poll(s) refused; ` +
        `${[...polls.values()].reduce((n, l) => n + l.length, 0)} polls; ` +
        `most logins of one user at once: ${Math.max(...Object.values(perUser))}`,
    );
  });
});

/** Per org, the [start, end] (ms) of every finished poll: `poll done` is logged at the end with its `ms`. */
function pollIntervals(logs: LogLine[]): Map<string, { start: number; end: number }[]> {
  const out = new Map<string, { start: number; end: number }[]>();
  for (const l of logs) {
    if (l.msg !== 'poll done' || typeof l.org !== 'string' || typeof l.ms !== 'number') continue;
    const end = Date.parse(String(l.time));
    const list = out.get(l.org) ?? [];
    list.push({ start: end - l.ms, end });
    out.set(l.org, list);
  }
  return out;
}
