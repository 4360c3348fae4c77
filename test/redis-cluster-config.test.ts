/**
 * Redis topologies in the configuration (server, Sentinel, Cluster) and the key layout a cluster
 * needs. The end-to-end run on a real 3-master cluster is test/scale/cluster.test.ts.
 */
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { makeRedisClient, parseRedisAddress } from '../src/adapters/redis-client.js';
import { stateKey } from '../src/adapters/redis-keys.js';
import { hashTag, parseConfig } from '../src/config.js';

const base = { s3: { bucket: 'calls' }, vela: { enabled: false } };
const redisOf = (redis: Record<string, unknown>) => parseConfig({ ...base, redis }).redis;

describe('redis configuration', () => {
  it('keeps `ftpsync` as the prefix of a single server and defaults to `{ftpsync}` on a cluster', () => {
    expect(redisOf({})).toMatchObject({ prefix: 'ftpsync', cluster: false });
    expect(redisOf({ cluster: true })).toMatchObject({ prefix: '{ftpsync}', cluster: true });
    expect(redisOf({ nodes: ['10.0.0.1:6379'] })).toMatchObject({ prefix: '{ftpsync}', cluster: true });
  });

  it('refuses a cluster prefix without a hash tag, naming the field and a fix', () => {
    expect(() => redisOf({ cluster: true, prefix: 'calls' })).toThrow(
      /^redis\.prefix: on a Redis Cluster the prefix needs a hash tag .* e\.g\. "\{calls\}", got "calls"$/,
    );
    expect(() => redisOf({ cluster: true, prefix: '{}calls' })).toThrow(/redis\.prefix: .*hash tag/);
    expect(redisOf({ cluster: true, prefix: 'prod-{calls}' }).prefix).toBe('prod-{calls}');
  });

  it('refuses sentinels for a cluster and an empty sentinel list', () => {
    expect(() => redisOf({ cluster: true, sentinel: { name: 'm', nodes: ['h:26379'] } })).toThrow(
      /redis\.sentinel: a Redis Cluster has no sentinels/,
    );
    expect(() => redisOf({ sentinel: { name: 'm', nodes: [] } })).toThrow(/redis\.sentinel\.nodes/);
  });

  it('finds the hash tag as Redis does: the first {…}, when not empty', () => {
    expect(hashTag('{ftpsync}:sync:wait')).toBe('ftpsync');
    expect(hashTag('a{b}{c}')).toBe('b');
    expect(hashTag('{}x{y}')).toBeUndefined();
    expect(hashTag('ftpsync')).toBeUndefined();
  });

  it('puts a tenant’s state under its own hash tag, whatever braces the prefix has', () => {
    expect(stateKey('ftpsync', 'acme', 'synced')).toBe('ftpsync:{acme}:synced');
    expect(stateKey('{ftpsync}', 'acme', 'synced')).toBe('ftpsync:{acme}:synced');
    expect(hashTag(stateKey('{ftpsync}', 'acme', 'conn'))).toBe('acme');
  });

  it('parses node addresses with and without a scheme', () => {
    expect(parseRedisAddress('10.0.0.5:7000')).toMatchObject({ host: '10.0.0.5', port: 7000, tls: false });
    expect(parseRedisAddress('rediss://u:p%40ss@redis.example/2')).toMatchObject({
      host: 'redis.example',
      port: 6379,
      username: 'u',
      password: 'p@ss',
      db: 2,
      tls: true,
    });
  });

  it('opens a Cluster client for a cluster and a plain one otherwise, without connecting', () => {
    const cluster = makeRedisClient(
      { url: 'redis://:pw@127.0.0.1:1', nodes: ['127.0.0.1:2'] },
      { lazyConnect: true },
    );
    const sentinel = makeRedisClient(
      { url: 'redis://:pw@127.0.0.1:1/3', sentinel: { name: 'main', nodes: ['127.0.0.1:3'] } },
      { lazyConnect: true },
    );
    const single = makeRedisClient({ url: 'redis://127.0.0.1:1' }, { lazyConnect: true });
    try {
      expect(cluster).toBeInstanceOf(Cluster);
      // BullMQ reads this on a cluster's redisOptions: it must be null for its workers.
      expect((cluster as Cluster).options.redisOptions).toMatchObject({
        maxRetriesPerRequest: null,
        password: 'pw',
      });
      expect(sentinel).toBeInstanceOf(Redis);
      expect((sentinel as Redis).options).toMatchObject({ name: 'main', password: 'pw', db: 3 });
      expect((single as Redis).options.maxRetriesPerRequest).toBeNull();
    } finally {
      for (const c of [cluster, sentinel, single]) c.disconnect();
    }
  });
});
