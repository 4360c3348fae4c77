/**
 * Fair order across tenants: a big poll of one tenant must not hold the queue's head while other
 * tenants' connections sit idle (each tenant's budget caps how many of its jobs can run at once).
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { makeEnqueue } from '../src/queue/enqueue.js';
import { SYNC_QUEUE } from '../src/queue/jobs.js';
import type { RemoteFile, SyncJobData } from '../src/types.js';
import { redisUrl, uniquePrefix } from './support/env.js';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const config = { worker: { attempts: 3, keepCompleted: 60_000 } } as Config;
const files = (n: number, tag: string): RemoteFile[] =>
  Array.from({ length: n }, (_, i) => ({
    path: `calls/${tag}-${i}.wav`,
    size: 1000 + i,
    mtime: `m${i}`,
    mtimeExact: true,
  }));

/** Runs every queued job through one worker, one at a time, and returns their order. */
async function processingOrder(total: number, prefix: string) {
  const order: string[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const connection = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const worker = new Worker<SyncJobData>(
    SYNC_QUEUE,
    async (job) => {
      order.push(`${job.data.org}:${job.data.path}`);
      if (order.length === total) done();
    },
    { connection, prefix, concurrency: 1 },
  );
  closers.push(
    () => connection.quit(),
    () => worker.close(),
  );
  await all;
  return order;
}

describe('fair order across tenants', () => {
  it('interleaves tenants whose polls were queued one after the other, each in its listing order', async () => {
    const prefix = uniquePrefix('fair');
    const connection = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const queue = new Queue<SyncJobData>(SYNC_QUEUE, { connection, prefix });
    closers.push(
      () => connection.quit(),
      () => queue.close(),
    );
    const enqueue = makeEnqueue(queue, config, connection);
    await enqueue('big', files(6, 'b'));
    await enqueue('small', files(2, 's'));
    await enqueue('mid', files(3, 'm'));

    const order = await processingOrder(11, prefix);
    expect(order).toEqual([
      'big:calls/b-0.wav',
      'small:calls/s-0.wav',
      'mid:calls/m-0.wav',
      'big:calls/b-1.wav',
      'small:calls/s-1.wav',
      'mid:calls/m-1.wav',
      'big:calls/b-2.wav',
      'mid:calls/m-2.wav',
      'big:calls/b-3.wav',
      'big:calls/b-4.wav',
      'big:calls/b-5.wav',
    ]);
  });

  it('a tenant polled later is not stuck behind an earlier tenant’s backlog', async () => {
    const prefix = uniquePrefix('fair-late');
    const connection = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const queue = new Queue<SyncJobData>(SYNC_QUEUE, { connection, prefix });
    closers.push(
      () => connection.quit(),
      () => queue.close(),
    );
    const enqueue = makeEnqueue(queue, config, connection);
    await enqueue('backlog', files(500, 'x'));
    await enqueue('late', files(1, 'y'));
    const order = await processingOrder(501, prefix);
    expect(order.indexOf('late:calls/y-0.wav')).toBeLessThanOrEqual(1);
  });
});
