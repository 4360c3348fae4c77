import type { TestProject } from 'vitest/node';
import { startRedis } from './redis.js';

/**
 * Vitest globalSetup: one redis-server for the whole run unless REDIS_URL points at one already.
 * Test files read it with `redisUrl()` from ./env.ts and keep apart with `uniquePrefix()`; the
 * `ProvidedContext` augmentation that types `provide('redisUrl')` lives in ./env.ts too.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.REDIS_URL;
  if (external) {
    project.provide('redisUrl', external);
    return async () => {};
  }
  const redis = await startRedis();
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
