/** The ConnectionBudget conformance suite against the Redis adapter and the in-memory fake. */
import { Redis } from 'ioredis';
import { makeRedisBudget } from '../../src/adapters/redis-budget.js';
import { redisUrl, uniquePrefix } from '../support/env.js';
import { makeMemoryBudget } from '../support/fakes/budget.js';
import { describeBudgetConformance } from './budget.js';

describeBudgetConformance('Redis', async () => {
  const redis = new Redis(redisUrl());
  const prefix = uniquePrefix('conf-budget');
  const budget = makeRedisBudget(redis, prefix);
  return {
    budget,
    async stop() {
      budget.close();
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        keys.push(...found);
        cursor = next;
      } while (cursor !== '0');
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    },
  };
});

describeBudgetConformance('in-memory fake', async () => ({
  budget: makeMemoryBudget(),
  stop: async () => {},
}));
