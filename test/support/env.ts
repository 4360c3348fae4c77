import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/** The Redis every test file shares: REDIS_URL, or the one global-setup.ts started. */
export function redisUrl(): string {
  const url = process.env.REDIS_URL || inject('redisUrl');
  if (!url) throw new Error('no Redis: set REDIS_URL or run through vitest (test/support/global-setup.ts)');
  return url;
}

/**
 * A key prefix no other test uses: `t-<name>-<8 hex>`, only [A-Za-z0-9_-] (no `:`, which BullMQ
 * forbids in ids, nor `{}` hash tags).
 */
export function uniquePrefix(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 40);
  return `t-${safe}-${randomBytes(4).toString('hex')}`;
}
