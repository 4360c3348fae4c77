/**
 * `npx tsx bench/state-bytes.ts`: Redis memory per synced version, the layout before (one hash of
 * JSON records per tenant, as written by the previous release) against the compact one, 100,000
 * versions of one tenant (48-character paths) on a fresh redis-server, INFO used_memory delta.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { makeRedisState } from '../src/adapters/redis-state.js';
import { startRedis } from '../test/support/redis.js';

const server = await startRedis();
const redis = new Redis(server.url);
const N = 100_000;
const path = (i: number) =>
  `recordings/2026/12/02/agent-${String(i % 200).padStart(3, '0')}/call-${String(i).padStart(7, '0')}.wav`;
const t0 = Date.parse('2026-12-02T08:00:00Z');
const rec = (n: number) => ({
  size: 40_000 + n,
  mtime: new Date(t0 + n * 1000).toISOString(),
  key: `acme/${path(n)}`,
  etag: `"${randomBytes(16).toString('hex')}"`,
  syncedAt: t0 + n * 1000 + 5_000,
});
const used = async () => {
  await redis.call('MEMORY', 'PURGE');
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
};
let b = await used();
for (let i = 0; i < N; i += 1000) {
  const f: string[] = [];
  for (let j = i; j < i + 1000; j++) f.push(path(j), JSON.stringify(rec(j)));
  await redis.hset('old:{acme}:synced', ...f);
}
console.log('old layout (hash of JSON, as before):', ((await used()) - b) / N, 'B/version');
await redis.flushall();
const s = makeRedisState(redis, 'new');
b = await used();
for (let i = 0; i < N; i += 2000)
  await Promise.all(
    Array.from({ length: 2000 }, (_, j) => s.markSynced('acme', path(i + j), rec(i + j), 'pattern')),
  );
console.log('new layout:', ((await used()) - b) / N, 'B/version');
await redis.quit();
await server.stop();
