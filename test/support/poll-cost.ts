/**
 * What a poll costs over a backlog: a daemon (poller role, no worker, so the jobs stay queued) on a
 * dedicated redis-server polls a synthetic tenant of `files` files. Once every version is queued, a
 * poll must add nothing, ask S3 nothing and send Redis no more commands than a poll of a tenant
 * whose files are all synced (plus one batched question per 1,000 queued versions). Redis commands
 * are counted with MONITOR (commands run inside scripts not counted: one script is one round trip);
 * S3 list calls at the store. Run by test/poll-cost.test.ts (main suite) and
 * test/scale/poll-cost.test.ts (100,000 versions).
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateKey } from '../../src/adapters/redis-keys.js';
import { makeRedisState } from '../../src/adapters/redis-state.js';
import { parseConfig } from '../../src/config.js';
import { makeLogger } from '../../src/log.js';
import { type Daemon, startDaemon } from '../../src/main.js';
import type { ObjectStore } from '../../src/ports/object-store.js';
import { parseJobId, SYNC_QUEUE } from '../../src/queue/jobs.js';
import { makeMemoryObjectStore } from './fakes/memory-object-store.js';
import { makeSyntheticSource } from './fakes/synthetic-source.js';
import { type RedisServer, startRedis } from './redis.js';

/** Counts the commands clients send (not those scripts run) between start() and stop(). */
async function commandCounter(url: string) {
  const mon = await new Redis(url).monitor();
  let counting = false;
  let count = 0;
  const names = new Map<string, number>();
  let marker = '';
  let seenMarker: () => void = () => {};
  mon.on('monitor', (_time: string, args: string[], source: string) => {
    if (args[0]?.toLowerCase() === 'ping' && args[1] === marker) return seenMarker();
    if (!counting || source === 'lua') return;
    count++;
    const name = args[0]?.toLowerCase() ?? '';
    names.set(name, (names.get(name) ?? 0) + 1);
  });
  const sync = async (redis: Redis) => {
    marker = randomBytes(6).toString('hex');
    const seen = new Promise<void>((r) => {
      seenMarker = r;
    });
    await redis.ping(marker);
    await seen;
  };
  return {
    async around<T>(redis: Redis, fn: () => Promise<T>) {
      await sync(redis);
      count = 0;
      names.clear();
      counting = true;
      const value = await fn();
      await sync(redis);
      counting = false;
      return { value, commands: count, byName: Object.fromEntries(names) };
    },
    close: () => mon.disconnect(),
  };
}

export function describePollCost(FILES: number): void {
  describe(`a poll over a backlog of ${FILES.toLocaleString('en')} queued versions`, () => {
    let server: RedisServer;
    let redis: Redis;
    let daemon: Daemon;
    let counter: Awaited<ReturnType<typeof commandCounter>>;
    let lists = 0;
    const backlog = makeSyntheticSource({ files: FILES, password: 'p' });
    const steady = makeSyntheticSource({ files: FILES, password: 'p' });
    const prefix = 'cost';

    beforeAll(async () => {
      server = await startRedis();
      redis = new Redis(server.url, { maxRetriesPerRequest: null });
      counter = await commandCounter(server.url);
      const memory = makeMemoryObjectStore();
      const store: ObjectStore = {
        ...memory,
        list(p) {
          lists++;
          return memory.list(p);
        },
      };
      const tenant = (org: string) => ({
        org,
        ftp: { host: '127.0.0.1', port: 21, secure: false, user: org, password: 'p' },
        dirs: ['/synthetic'],
      });
      const config = parseConfig({
        redis: { url: server.url, prefix },
        s3: { bucket: 'b' },
        vela: { enabled: false },
        defaults: { pollInterval: '1h', minFileAge: '0s' },
        tenants: [tenant('backlog'), tenant('steady')],
      });
      daemon = await startDaemon(config, {
        role: 'poller',
        log: makeLogger({ level: 'warn' }),
        store,
        reconcileMs: 3_600_000,
        connectSource: (t, c) => (t.org === 'backlog' ? backlog : steady).connect({ password: c.password }),
      });
    }, 60_000);

    afterAll(async () => {
      await daemon?.close();
      counter?.close();
      await redis?.quit();
      await server?.stop();
    });

    it('adds nothing, lists no S3 prefix, and costs Redis no more than a poll of synced files', async () => {
      const poll = (org: string) => daemon.poller!.pollNow(org);
      expect(await poll('backlog')).toMatchObject({ kind: 'done', enqueued: 0, waiting: FILES });
      expect(await poll('backlog')).toMatchObject({ kind: 'done', enqueued: FILES });
      const queue = new Queue(SYNC_QUEUE, { connection: redis, prefix });
      // Files carried by the queue's jobs (a group job carries many: its id says how many).
      const jobs = async () => {
        const ids = await queue.getRanges(
          ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'],
          0,
          -1,
        );
        return ids.reduce((n, id) => n + (parseJobId(id)?.files ?? 1), 0);
      };
      expect(await jobs()).toBe(FILES);
      const listsBefore = lists;
      const cpu = process.cpuUsage();
      const backlogPoll = await counter.around(redis, () => poll('backlog'));
      const cpuMs = (process.cpuUsage(cpu).user + process.cpuUsage(cpu).system) / 1000;
      expect(backlogPoll.value).toMatchObject({ kind: 'done', enqueued: 0, queued: FILES, unchanged: 0 });
      expect(lists).toBe(listsBefore);
      expect(await jobs()).toBe(FILES);
      // Queued versions are not kept as "seen" either: the set does not grow with the backlog.
      expect(await redis.hlen(stateKey(prefix, 'backlog', 'seen'))).toBe(0);

      // The same number of files, every one synced: the poll that changes nothing.
      const state = makeRedisState(redis, prefix);
      for (let i = 0; i < FILES; i += 1_000)
        await Promise.all(
          Array.from({ length: Math.min(1_000, FILES - i) }, (_, j) => {
            const v = steady.version(i + j);
            return state.markSynced('steady', v.path, { ...v, key: `steady/${v.path}`, syncedAt: 1 });
          }),
        );
      const steadyPoll = await counter.around(redis, () => poll('steady'));
      expect(steadyPoll.value).toMatchObject({ kind: 'done', enqueued: 0, unchanged: FILES });
      await queue.close();

      const chunks = Math.ceil(FILES / 1_000);
      console.log(
        `poll over ${FILES} queued versions: ${backlogPoll.commands} Redis commands ` +
          `(${JSON.stringify(backlogPoll.byName)}), ${cpuMs.toFixed(0)} ms CPU (listing included); ` +
          `a poll of ${FILES} synced files: ${steadyPoll.commands} commands (${JSON.stringify(steadyPoll.byName)})`,
      );
      expect(backlogPoll.commands).toBeLessThanOrEqual(steadyPoll.commands + chunks + 5);
      expect(backlogPoll.commands).toBeLessThanOrEqual(3 * chunks + 50);
    }, 600_000);
  });
}
