import { setTimeout as delay } from 'node:timers/promises';

/**
 * Polls `fn` until it returns a truthy value, which it returns; throws after `timeoutMs` saying what
 * it waited for. The one waiting helper of the tests.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}
