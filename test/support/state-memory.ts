/**
 * What sync state costs in Redis memory, measured on a dedicated redis-server with its defaults:
 * `versions` synced versions of one tenant through the state adapter (realistic paths, exact times,
 * an ETag given and not kept) and as many manifest rows. Run by test/state-layout.test.ts (main
 * suite, fewer versions) and test/scale/state-memory.test.ts (10^5).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisState } from '../../src/adapters/redis-state.js';
import type { IndexedRow } from '../../src/ports/sync-state.js';
import { type RedisServer, startRedis } from './redis.js';

const path = (i: number) =>
  `recordings/2026/12/02/agent-${String(i % 200).padStart(3, '0')}/call-${String(i).padStart(7, '0')}.wav`;

const ref = (i: number) => `call-${String(i).padStart(7, '0')}.wav`;

export async function usedMemory(redis: Redis): Promise<number> {
  await redis.call('MEMORY', 'PURGE').catch(() => {});
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
}

export async function keysOf(redis: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

export function describeStateMemory(VERSIONS: number): void {
  describe('sync state in Redis memory (a dedicated redis-server, defaults)', () => {
    let server: RedisServer;
    let redis: Redis;
    beforeAll(async () => {
      server = await startRedis();
      redis = new Redis(server.url);
    });
    afterAll(async () => {
      await redis?.quit();
      await server?.stop();
    });

    it(`${VERSIONS.toLocaleString('en')} synced versions of one tenant cost at most 100 bytes each, every bucket packed`, async () => {
      const state = makeRedisState(redis, 'mem');
      const before = await usedMemory(redis);
      const t0 = Date.parse('2026-12-02T08:00:00Z');
      for (let i = 0; i < VERSIONS; i += 2_000) {
        await Promise.all(
          Array.from({ length: 2_000 }, (_, j) => {
            const n = i + j;
            return state.markSynced(
              'acme',
              path(n),
              {
                size: 40_000 + n,
                mtime: new Date(t0 + n * 1000).toISOString(),
                key: `acme/${path(n)}`,
                etag: `"${randomBytes(16).toString('hex')}"`,
                syncedAt: t0 + n * 1000 + 5_000,
              },
              'pattern',
            );
          }),
        );
      }
      const perVersion = ((await usedMemory(redis)) - before) / VERSIONS;
      console.log(
        `sync state: ${perVersion.toFixed(1)} B of Redis used_memory per synced version (${VERSIONS} versions, one tenant)`,
      );
      expect(perVersion).toBeLessThanOrEqual(100);

      const buckets = await keysOf(redis, 'mem:{acme}:sv:*');
      expect(buckets.length).toBeGreaterThan(VERSIONS / 128);
      const pipe = redis.pipeline();
      for (const b of buckets) pipe.object('ENCODING', b);
      const encodings = new Set(((await pipe.exec()) ?? []).map(([, e]) => e));
      expect([...encodings]).toEqual(['listpack']);
      // Everything reads back: a sample through each reader.
      const probe = VERSIONS - 3;
      const got = await state.lookup('acme', [path(0), path(probe), 'nope.wav']);
      expect(got.synced[1]).toStrictEqual({
        size: 40_000 + probe,
        mtime: new Date(t0 + probe * 1000).toISOString(),
        key: `acme/${path(probe)}`,
        syncedAt: t0 + probe * 1000 + 5_000,
      });
      expect(got.synced[2]).toBeUndefined();
      expect((await state.allSynced('acme')).size).toBe(VERSIONS);
      expect((await state.info('acme')).files).toBe(VERSIONS);
    }, 600_000);

    it(`${VERSIONS.toLocaleString('en')} manifest rows cost at most 80 bytes each`, async () => {
      const state = makeRedisState(redis, 'rows');
      const before = await usedMemory(redis);
      for (let m = 0; m < 10; m++) {
        const rows = new Map<string, IndexedRow>();
        for (let i = m * (VERSIONS / 10); i < (m + 1) * (VERSIONS / 10); i++) {
          rows.set(ref(i), {
            email: `agent${i % 200}@acme.example`,
            dateOfCall: '2026-12-02',
            line: (i % 10_000) + 2,
            file: ref(i),
            manifest: `manifests/2026-12-02-${m}.csv`,
          });
        }
        await state.indexManifest('acme', rows);
      }
      const probe = VERSIONS - 3;
      const perRow = ((await usedMemory(redis)) - before) / VERSIONS;
      console.log(`manifest rows: ${perRow.toFixed(1)} B of Redis used_memory per row (${VERSIONS} rows)`);
      expect(perRow).toBeLessThanOrEqual(80);
      expect(await state.findManifestRow('acme', [`x/${ref(probe)}`, ref(probe)])).toStrictEqual({
        email: `agent${probe % 200}@acme.example`,
        dateOfCall: '2026-12-02',
        line: (probe % 10_000) + 2,
        file: ref(probe),
        manifest: `manifests/2026-12-02-${Math.floor(probe / (VERSIONS / 10))}.csv`,
      });
    }, 600_000);
  });
}
