/**
 * `npx tsx bench/put-loop.ts [count] [KiB] [concurrency]`: the S3 store's CPU per small PutObject,
 * nothing else — `count` in-memory bodies (default 2,000 × 50 KiB, 4 at a time) through
 * `makeS3Store` into s3rver running in a process of its own (bench/s3-child.ts), so that the CPU
 * measured here is the client's alone. Prints µs of CPU per PutObject and files/s.
 * With `node --cpu-prof --import tsx bench/put-loop.ts` it writes a CPU profile of the loop: what
 * the SDK costs per request (see s3-client.ts, REMOVED_MIDDLEWARE).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeS3Client, makeS3Store } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { startChild } from './lib/child.js';
import { parallel } from './lib/corpus.js';

const [count = 2000, kib = 50, concurrency = 4] = process.argv.slice(2).map(Number);
const here = fileURLToPath(new URL('.', import.meta.url));
const child = startChild(join(here, 's3-child.ts'), [], { nodeArgs: ['--import', 'tsx'] });
try {
  const ready = await child.next<{ type: string; endpoint: string; bucket: string }>('ready', 60_000);
  const cfg = parseConfig(
    {
      s3: { bucket: ready.bucket, endpoint: ready.endpoint, forcePathStyle: true },
      vela: { enabled: false },
    },
    {},
  ).s3;
  const store = makeS3Store(
    cfg,
    makeS3Client(cfg, { credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }),
  );
  const body = randomBytes(kib * 1024);
  const put = (i: number) =>
    store.put(`loop/f${i}.wav`, body, { size: body.length, metadata: { 'source-path': `f${i}.wav` } });
  await parallel(
    Array.from({ length: 50 }, (_, i) => i),
    concurrency,
    put,
  ); // warm up: modules, connections, JIT
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await parallel(
    Array.from({ length: count }, (_, i) => i),
    concurrency,
    put,
  );
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const us = (cpu.user + cpu.system) / count;
  console.log(
    `${count} × ${kib} KiB PutObject, ${concurrency} at a time: ${us.toFixed(0)} µs CPU each (client), ` +
      `${((count / ms) * 1000).toFixed(0)} files/s`,
  );
  store.client.destroy();
} finally {
  await child.kill();
}
