/**
 * The no-change poll: a tenant whose directory holds N entries, every one already in sync state.
 * Sync state is written beforehand from a listing through ftp-sync's own FTP adapter (so sizes and
 * time strings are exactly what the poll will compare); the daemon's Redis traffic goes through a
 * counting proxy. Each timed `pollNow` is compared with a bare listing of the same directory.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connectFtp } from '../../src/adapters/ftp.js';
import { stateKey } from '../../src/adapters/redis-keys.js';
import { parseConfig } from '../../src/config.js';
import { objectKey } from '../../src/sync/key.js';
import type { DaemonSpec } from '../daemon-child.js';
import { startChild } from './child.js';
import type { BenchEnv } from './env.js';
import { daemonConfig } from './measure.js';
import { commandStats, diffStats, startRedisCounter } from './redis-count.js';
import { median } from './report.js';

export interface PollResult {
  entries: number;
  pollMs: number;
  pollCpuS: number;
  listMs: number;
  listCpuS: number;
  /** Redis commands during one poll (median), commands run inside scripts and transactions included. */
  commands: number;
  /** The commands by name (of the median poll). */
  byCommand: string;
  /** Client → server writes during one poll (median): the round trips. */
  roundTrips: number;
  /** Background traffic of an idle daemon over the same time (BullMQ's timers), for comparison. */
  idleRoundTrips: number;
  idleCommands: number;
  maxRssKiB: number;
}

export async function runPoll(env: BenchEnv, dir: string, repeats: number): Promise<PollResult> {
  const org = 'poll';
  const prefix = 'b-poll';
  const doc = daemonConfig(env, { prefix, tenants: [{ org, dir }], connections: 2, concurrency: 4 });
  const tenant = parseConfig(doc, {}).tenants[0]!;

  // Everything listed is already synced.
  const session = await connectFtp(tenant, { user: 'anonymous', password: 'bench@' });
  const entries = await session.list(`/${dir}`);
  session.close();
  const now = Date.now();
  for (let i = 0; i < entries.length; i += 1000) {
    const args: string[] = [];
    for (const e of entries.slice(i, i + 1000)) {
      const path = `${dir}/${e.name}`;
      args.push(
        path,
        JSON.stringify({
          size: e.size,
          mtime: e.mtime,
          key: objectKey('{org}/{path}', org, path),
          syncedAt: now,
        }),
      );
    }
    await env.admin.hset(stateKey(prefix, org, 'synced'), ...args);
  }

  const counter = await startRedisCounter(env.redis.port);
  try {
    const spec: DaemonSpec = {
      mode: 'poll',
      config: { ...doc, redis: { url: counter.url, prefix } },
      directRedisUrl: env.redis.url,
      repeats,
      listDir: `/${dir}`,
      ftp: { host: '127.0.0.1', port: env.ftp.port },
    };
    const specFile = join(env.work, 'specs', 'poll.json');
    await writeFile(specFile, JSON.stringify(spec));
    const child = startChild(join(env.build, 'bench', 'daemon-child.js'), [specFile], {
      env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
      logFile: join(env.work, 'logs', 'poll.log'),
    });
    try {
      await child.next('ready', 300_000);
      // The idle daemon's own traffic over 2 s, to tell it apart from the poll's.
      const idle0 = { w: counter.writes(), c: await commandStats(env.admin) };
      await delay(2000);
      const idle1 = { w: counter.writes(), c: await commandStats(env.admin) };
      const idlePerS = {
        w: (idle1.w - idle0.w) / 2,
        c: [...diffStats(idle0.c, idle1.c).values()].reduce((s, n) => s + n, 0) / 2,
      };
      child.send({ type: 'go' });
      const polls: { writes: number; commands: number; byCommand: string }[] = [];
      for (let i = 0; i < repeats; i++) {
        await child.next('poll-start');
        const a = { w: counter.writes(), c: await commandStats(env.admin) };
        child.send({ type: 'ack' });
        await child.next('poll-end');
        const b = { w: counter.writes(), c: await commandStats(env.admin) };
        child.send({ type: 'ack' });
        const d = diffStats(a.c, b.c);
        polls.push({
          writes: b.w - a.w,
          commands: [...d.values()].reduce((s, n) => s + n, 0),
          byCommand: [...d]
            .sort((x, y) => y[1] - x[1])
            .map(([k, n]) => `${k} ${n}`)
            .join(', '),
        });
      }
      const done = await child.next<{
        type: string;
        polls: { ms: number; cpuSeconds: number; listed: number }[];
        lists: { ms: number; cpuSeconds: number; entries: number }[];
        maxRssKiB: number;
      }>('done');
      child.send({ type: 'exit' });
      await child.exited;
      const pollMs = median(done.polls.map((p) => p.ms));
      const mid = [...polls].sort((x, y) => x.commands - y.commands)[Math.floor(polls.length / 2)]!;
      return {
        entries: done.polls[0]?.listed ?? 0,
        pollMs,
        pollCpuS: median(done.polls.map((p) => p.cpuSeconds)),
        listMs: median(done.lists.map((l) => l.ms)),
        listCpuS: median(done.lists.map((l) => l.cpuSeconds)),
        commands: median(polls.map((p) => p.commands)),
        byCommand: mid.byCommand,
        roundTrips: median(polls.map((p) => p.writes)),
        idleRoundTrips: Math.round((idlePerS.w * pollMs) / 1000),
        idleCommands: Math.round((idlePerS.c * pollMs) / 1000),
        maxRssKiB: done.maxRssKiB,
      };
    } finally {
      await child.kill();
    }
  } finally {
    await counter.close();
    await env.admin.flushall();
  }
}
