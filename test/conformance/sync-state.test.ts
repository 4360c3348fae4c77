/**
 * The SyncStateStore conformance suite against the Redis adapter (the shared test Redis, a prefix
 * of its own, removed afterwards) and against the in-memory fake the fast suites use.
 */
import { Redis } from 'ioredis';
import { makeRedisState } from '../../src/adapters/redis-state.js';
import { redisUrl, uniquePrefix } from '../support/env.js';
import { makeMemoryState } from '../support/fakes/sync-state.js';
import { describeSyncStateConformance } from './sync-state.js';

async function keysOf(redis: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

describeSyncStateConformance('Redis', async () => {
  const redis = new Redis(redisUrl());
  const prefix = uniquePrefix('conf-sync-state');
  return {
    state: makeRedisState(redis, prefix),
    isEmpty: async (org) => (await keysOf(redis, `${prefix}:{${org}}:*`)).length === 0,
    async stop() {
      const keys = await keysOf(redis, `${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    },
  };
});

describeSyncStateConformance('in-memory fake', async () => {
  const state = makeMemoryState();
  return {
    state,
    isEmpty: async (org) => !state.orgs().includes(org),
    stop: async () => {},
  };
});
