/**
 * The one Redis connection a process opens, in the shape the configuration asks for: a single server
 * (`redis.url`), a primary found through Redis Sentinel (`redis.sentinel`) or a Redis Cluster
 * (`redis.cluster` / `redis.nodes`). Everything else takes a `RedisClient` and never knows which.
 *
 * On a cluster every multi-key command must stay inside one hash slot (CROSSSLOT otherwise):
 * - BullMQ's keys are `<prefix>:<queue>:…`, so the prefix carries a hash tag (`{ftpsync}`), checked
 *   by the config schema; the onboarded-tenant hashes `<prefix>:tenants` and `<prefix>:tenant-secrets`
 *   (written in one MULTI) share that tag too.
 * - A tenant's sync state, connection leases and poll lock are `<prefix without braces>:{<org>}:…`
 *   (see `stateKey`): one slot per tenant, so tenants spread over the cluster's masters.
 */
import { createHash } from 'node:crypto';
import { type ChainableCommander, Cluster, Redis, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

/** `redis:` of the configuration (src/config.ts). */
export interface RedisConnectionConfig {
  url: string;
  cluster?: boolean;
  nodes?: string[];
  sentinel?: { name: string; nodes: string[]; password?: string; username?: string };
}

/** `redis://user:pass@host:port/db`, `rediss://…` or `host:port` → what ioredis needs to connect. */
export function parseRedisAddress(text: string): {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls: boolean;
} {
  const url = new URL(text.includes('://') ? text : `redis://${text}`);
  const db = url.pathname.replace(/^\//, '');
  return {
    host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: Number(url.port || 6379),
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: db ? Number(db) : undefined,
    tls: url.protocol === 'rediss:',
  };
}

/**
 * Opens the configured connection. `overrides` go to every server connection (a CLI probe passes
 * fail-fast options); by default commands wait through an outage (`maxRetriesPerRequest: null`,
 * which BullMQ requires).
 */
export function makeRedisClient(cfg: RedisConnectionConfig, overrides: RedisOptions = {}): RedisClient {
  const base: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true, ...overrides };
  const main = parseRedisAddress(cfg.url);
  const auth = {
    ...(main.username ? { username: main.username } : {}),
    ...(main.password ? { password: main.password } : {}),
    ...(main.tls ? { tls: {} } : {}),
  };
  if (cfg.cluster || cfg.nodes?.length) {
    const nodes = (cfg.nodes?.length ? cfg.nodes : [cfg.url]).map(parseRedisAddress);
    const { retryStrategy, ...redisOptions } = base;
    return new Cluster(
      nodes.map((n) => ({ host: n.host, port: n.port })),
      {
        redisOptions: { ...auth, ...redisOptions },
        ...(retryStrategy !== undefined ? { clusterRetryStrategy: retryStrategy } : {}),
        ...(overrides.lazyConnect ? { lazyConnect: true } : {}),
        ...(overrides.enableAutoPipelining ? { enableAutoPipelining: true } : {}),
      },
    );
  }
  if (cfg.sentinel) {
    return new Redis({
      ...auth,
      db: main.db,
      ...base,
      name: cfg.sentinel.name,
      sentinels: cfg.sentinel.nodes.map(parseRedisAddress).map((n) => ({ host: n.host, port: n.port })),
      sentinelPassword: cfg.sentinel.password,
      sentinelUsername: cfg.sentinel.username,
    });
  }
  return new Redis(cfg.url, base);
}

/** One server (a URL), or whatever `redis:` configures: a Sentinel-managed primary or a Redis Cluster. */
export function makeRedis(cfg: string | RedisConnectionConfig): RedisClient {
  // BullMQ requires maxRetriesPerRequest: null; commands wait through a Redis outage instead of failing.
  return makeRedisClient(typeof cfg === 'string' ? { url: cfg } : cfg);
}

/**
 * A Lua script run by `EVALSHA`: its source crosses the wire once per connection, not once per call.
 * Called on a client, or on a pipeline or MULTI of it (its reply then comes with `exec()`).
 */
export type LuaScript = (
  target: RedisClient | ChainableCommander,
  keys: readonly string[],
  args?: readonly (string | number)[],
) => Promise<unknown>;

/** What `luaScript` reads of a client or pipeline beyond ioredis's public types. */
interface ScriptHost {
  isPipeline?: boolean;
  redis?: ScriptHost;
  scriptsSet?: Record<string, unknown>;
  defineCommand(name: string, def: { lua: string }): void;
  [name: string]: unknown;
}

/**
 * `source` as an ioredis command (`defineCommand`, named by its SHA-1, defined on a connection the
 * first time it is run there). ioredis sends the body once per connection (`EVAL`), then only the
 * SHA-1; a server that forgot it (a restart, `SCRIPT FLUSH`, another cluster master) answers
 * NOSCRIPT and gets the body again. The same on a single server, Sentinel or a Cluster (routed by
 * the first key), in pipelines and MULTI too. Every script of the adapters goes this way: the source
 * is most of a call's bytes.
 */
export function luaScript(source: string): LuaScript {
  const name = `ftpsync:${createHash('sha1').update(source).digest('hex')}`;
  return (target, keys, args = []) => {
    const host = target as unknown as ScriptHost;
    const client = host.isPipeline && host.redis ? host.redis : host;
    if (!client.scriptsSet?.[name]) client.defineCommand(name, { lua: source });
    const fn = client[name] as (...a: (string | number)[]) => Promise<unknown>;
    return fn.call(target, keys.length, ...keys, ...args);
  };
}
