/**
 * The upload API's Redis state.
 *
 *   <prefix>:api-tokens       hash  token id → {"org","hash","createdAt"} (hash: SHA-256 of the secret, hex)
 *   <prefix>:api-orgs         set   orgs registered for the API
 *   <prefix>:{org}:api-pending hash upload id → the pending upload (JSON)
 *
 * A token is `fsk_<id>_<secret>`: 8 random bytes of id and 32 of secret, base64url. Only the secret's
 * hash is stored; checking a token is one HGET by id and one `timingSafeEqual` of two 32-byte digests,
 * so the time taken says nothing about how much of a guess was right.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ReplyError } from 'ioredis';
import { StoreUnavailableError } from '../errors.js';
import type {
  ApiTokenInfo,
  ApiTokenStore,
  PendingUpload,
  PendingUploads,
  RateLimiter,
} from '../ports/api.js';
import { luaScript, type RedisClient } from './redis-client.js';
import { stateKey } from './redis-keys.js';

const TOKEN = /^fsk_([A-Za-z0-9_-]{11})_([A-Za-z0-9_-]{43})$/;

interface StoredToken {
  org: string;
  hash: string;
  createdAt: number;
}

/**
 * Runs a Redis call of the request path; a failure that is not Redis's own reply (the connection
 * down, a command timed out: see `api` in root.ts) becomes `StoreUnavailableError`.
 */
async function reachable<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof ReplyError) throw err;
    throw new StoreUnavailableError(`Redis unavailable (${what}): ${(err as Error).message}`, { cause: err });
  }
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function makeRedisApiTokens(redis: RedisClient, prefix: string): ApiTokenStore {
  const tokensKey = `${prefix}:api-tokens`;
  const orgsKey = `${prefix}:api-orgs`;
  const all = async (): Promise<ApiTokenInfo[]> => {
    const raw = await redis.hgetall(tokensKey);
    return Object.entries(raw)
      .map(([id, json]) => {
        const t = JSON.parse(json) as StoredToken;
        return { id, org: t.org, createdAt: t.createdAt };
      })
      .sort((a, b) => a.org.localeCompare(b.org) || a.createdAt - b.createdAt);
  };
  return {
    async create(org) {
      const id = randomBytes(8).toString('base64url');
      const secret = randomBytes(32).toString('base64url');
      const createdAt = Date.now();
      const stored: StoredToken = { org, hash: sha256(secret).toString('hex'), createdAt };
      await redis.multi().hset(tokensKey, id, JSON.stringify(stored)).sadd(orgsKey, org).exec();
      return { token: `fsk_${id}_${secret}`, info: { id, org, createdAt } };
    },
    async list(org) {
      const tokens = await all();
      return org ? tokens.filter((t) => t.org === org) : tokens;
    },
    async revoke(org, id) {
      const raw = await redis.hget(tokensKey, id);
      if (!raw || (JSON.parse(raw) as StoredToken).org !== org) return false;
      return (await redis.hdel(tokensKey, id)) === 1;
    },
    async verify(token) {
      const m = TOKEN.exec(token);
      if (!m) return undefined;
      const raw = await reachable('token', () => redis.hget(tokensKey, m[1]!));
      // An unknown id still costs a digest and a comparison, like a known one.
      const stored = raw ? (JSON.parse(raw) as StoredToken) : undefined;
      const want = stored ? Buffer.from(stored.hash, 'hex') : sha256('');
      const same = timingSafeEqual(sha256(m[2]!), want);
      return stored && same ? stored.org : undefined;
    },
    async orgs() {
      return (await redis.smembers(orgsKey)).sort();
    },
    async addOrg(org) {
      await redis.sadd(orgsKey, org);
    },
    async removeOrg(org) {
      const ids = (await all()).filter((t) => t.org === org).map((t) => t.id);
      const multi = redis.multi().srem(orgsKey, org);
      if (ids.length) multi.hdel(tokensKey, ...ids);
      const res = await multi.exec();
      return res?.[0]?.[1] === 1 || ids.length > 0;
    },
  };
}

export function makeRedisPendingUploads(redis: RedisClient, prefix: string): PendingUploads {
  const key = (org: string) => stateKey(prefix, org, 'api-pending');
  return {
    async add(u) {
      await reachable('pending upload', () => redis.hset(key(u.org), u.id, JSON.stringify(u)));
    },
    async get(org, id) {
      const raw = await reachable('pending upload', () => redis.hget(key(org), id));
      return raw ? (JSON.parse(raw) as PendingUpload) : undefined;
    },
    async list(org) {
      return Object.values(await redis.hgetall(key(org))).map((raw) => JSON.parse(raw) as PendingUpload);
    },
    async claim(org, id) {
      return (await redis.hdel(key(org), id)) === 1;
    },
  };
}

/**
 * A fixed window per org (`<prefix>:{org}:api-rate:<window>`), counted by one script (INCR, and
 * PEXPIRE when the window's key is new): every replica counts into the same key, so the limit holds
 * for the deployment, not per process. One command per request (a MULTI of INCR and PEXPIRE was four,
 * and an ioredis pipeline object besides).
 */
const RATE_SCRIPT = luaScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`);

export function makeRedisRateLimiter(
  redis: RedisClient,
  prefix: string,
  opts: { limit: number; windowMs?: number },
): RateLimiter {
  const windowMs = opts.windowMs ?? 60_000;
  return {
    async take(org) {
      const now = Date.now();
      const window = Math.floor(now / windowMs);
      const count = Number(
        await reachable('rate limit', () =>
          RATE_SCRIPT(redis, [stateKey(prefix, org, `api-rate:${window}`)], [windowMs * 2]),
        ),
      );
      return {
        ok: count <= opts.limit,
        retryAfterSeconds: Math.ceil(((window + 1) * windowMs - now) / 1000),
      };
    },
  };
}
