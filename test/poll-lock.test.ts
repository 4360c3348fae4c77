/**
 * Invariant 6: one poll per tenant at a time, across replicas, even when a listing is slower than
 * the poll interval (the real-process case is in test/faults/race.test.ts).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTestEnv, type TestEnv } from './support/daemon.js';
import { writeFileDeep } from './support/fs.js';

let env: TestEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('one poll per tenant at a time (invariant 6)', () => {
  it('two daemons polling one tenant at once with a slow listing: one poll runs, the others are skipped', async () => {
    env = await makeTestEnv('poll-lock');
    for (let d = 0; d < 3; d++) await writeFileDeep(env.root, `calls/d${d}/a.wav`, 1000 + d);
    env.ftp.faults.listDelayMs = 300; // four listings: more than a second per poll
    const a = await env.start();
    const b = await env.start();
    // The scheduler's own first poll runs at start: let it finish, so only our four compete.
    const until = Date.now() + 20_000;
    for (;;) {
      const c = await a.poller!.queue.getJobCounts('active', 'waiting', 'completed');
      if (!c.active && !c.waiting && c.completed) break;
      if (Date.now() > until)
        throw new Error(`the first scheduled poll did not finish: ${JSON.stringify(c)}`);
      await delay(50);
    }
    const outcomes = await Promise.all([a, b, a, b].map((d) => d.poller!.pollNow('acme')));
    expect(outcomes.map((o) => o.kind).sort()).toEqual(['done', 'skipped', 'skipped', 'skipped']);
    // Once it is over, the lock is free: the next poll is not skipped (it may find no free connection
    // slot while the other daemon's idle session still holds one: that is the budget, not the lock).
    expect((await b.poller!.pollNow('acme')).kind).not.toBe('skipped');
  });
});
