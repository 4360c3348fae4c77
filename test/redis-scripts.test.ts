/**
 * Per-file Lua scripts run by EVALSHA (`luaScript`): the source crosses the wire once per connection,
 * and a server that lost its script cache (a restart, SCRIPT FLUSH, a failover) is served again; in a
 * pipeline too.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { luaScript } from '../src/adapters/redis-client.js';
import { type RedisServer, startRedis } from './support/redis.js';

let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null });
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const commands = async () => {
  const stats = String(await redis.info('commandstats'));
  const count = (name: string) => Number(stats.match(new RegExp(`cmdstat_${name}:calls=(\\d+)`))?.[1] ?? 0);
  return { eval: count('eval'), evalsha: count('evalsha') };
};

describe('luaScript', () => {
  const incr = luaScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");

  it('sends the source once, then only its SHA-1', async () => {
    await redis.config('RESETSTAT');
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await incr(redis, ['n'], [2]));
    expect(results).toEqual([2, 4, 6, 8, 10]);
    // The first call sends the source (EVAL, which loads it); the other four run by SHA.
    expect(await commands()).toEqual({ eval: 1, evalsha: 4 });
  });

  it('loads the script again after the server forgot it', async () => {
    await redis.script('FLUSH');
    expect(await incr(redis, ['n'], [1])).toBe(11);
    await server.restart();
    await redis.ping(); // reconnected
    expect(await incr(redis, ['n'], [1])).toBe(1);
  });

  it('runs in a pipeline, by SHA once the connection sent the source', async () => {
    await redis.config('RESETSTAT');
    const pipe = redis.pipeline();
    incr(pipe, ['m'], [3]);
    incr(pipe, ['m'], [4]);
    expect(await pipe.exec()).toEqual([
      [null, 3],
      [null, 7],
    ]);
    expect(await commands()).toEqual({ eval: 0, evalsha: 2 });
  });

  it("passes the script's own error through", async () => {
    const bad = luaScript("return redis.call('NOSUCHCOMMAND')");
    await expect(bad(redis, [])).rejects.toThrow(/Unknown Redis command|unknown command/i);
  });
});
