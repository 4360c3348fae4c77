import { randomUUID } from 'node:crypto';
import type { PollLocks } from '../ports/locks.js';
import type { RedisClient } from './redis-client.js';
import { stateKey } from './redis-keys.js';

/**
 * A renewed lock: runs `fn` only if no other holder has the lock (invariant 6: one poll per tenant at
 * a time across replicas). Returns `{ ran: false }` when the lock is taken.
 */
async function withLock<T>(
  redis: RedisClient,
  key: string,
  ttlMs: number,
  fn: () => Promise<T>,
): Promise<{ ran: true; value: T } | { ran: false }> {
  const token = randomUUID();
  const ok = await redis.set(key, token, 'PX', ttlMs, 'NX');
  if (ok !== 'OK') return { ran: false };
  const timer = setInterval(
    () => {
      void redis
        .eval(
          "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
          1,
          key,
          token,
          ttlMs,
        )
        .catch(() => {});
    },
    Math.floor(ttlMs / 3),
  );
  timer.unref();
  try {
    return { ran: true, value: await fn() };
  } finally {
    clearInterval(timer);
    await redis
      .eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        1,
        key,
        token,
      )
      .catch(() => {});
  }
}

/** The poll lock of each tenant (`<prefix>:{<org>}:poll-lock`), renewed while the poll runs. */
export function makeRedisPollLocks(redis: RedisClient, prefix: string, ttlMs: number): PollLocks {
  return {
    withPollLock: (org, fn) => withLock(redis, stateKey(prefix, org, 'poll-lock'), ttlMs, fn),
  };
}
