/**
 * The session pool across replicas: an idle session holds a slot of the tenant's connection budget,
 * and gives it back early when another replica is refused a slot (invariant 5 stays whole: the
 * budget is never exceeded while the slot changes hands).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRedisBudget, PAUSE_BASE_MS, PAUSE_MAX_MS } from '../src/adapters/redis-budget.js';
import { connectSource } from '../src/adapters/source.js';
import { makeSessionPool, type SessionPool } from '../src/sync/pool.js';
import { makeTestEnv, passwordOf, type TestEnv, waitIdle } from './support/daemon.js';
import { writeFileDeep } from './support/fs.js';
import { listAll } from './support/s3.js';
import { waitFor } from './support/wait.js';

let env: TestEnv | undefined;
const pools: SessionPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.closeAll()));
  await env?.stop();
  env = undefined;
});

/** One replica's pool: its own budget client over the shared Redis, sessions idle for a minute. */
function replicaPool(
  e: TestEnv,
  budget = makeRedisBudget(e.redis, e.prefix),
  opts: { wantedMinIdleMs?: number; wantAfterMs?: number } = {},
): SessionPool {
  const pool = makeSessionPool({
    ...opts,
    budget,
    credentials: { get: async (org) => ({ user: org, password: passwordOf(org) }), invalidate() {} },
    connect: (t, c) => connectSource(t, c, { timeoutMs: 5_000 }),
    log: e.logs.log,
    idleMs: 60_000,
    wantedCheckMs: 100,
  });
  pools.push(pool);
  return pool;
}

describe('session pool across replicas', () => {
  it('an idle session keeps its slot until another replica is refused one, then gives it back', async () => {
    env = await makeTestEnv('pool-wanted', { tenant: { maxConnections: 1 } });
    const tenant = env.config.tenants[0]!;
    const a = replicaPool(env);
    const b = replicaPool(env);

    const first = await a.acquire(tenant);
    expect(first).not.toBeNull();
    await a.release(first!);
    // Nobody else wants the tenant: the idle session stays logged in (reused by A's next job).
    await delay(400);
    expect(a.open('acme')).toBe(1);

    // B is refused (the budget is 1 and A holds it)…
    expect(await b.acquire(tenant)).toBeNull();
    // …so A logs its idle session out and frees the slot, long before its idle time is over.
    await waitFor("A's idle session to close", () => a.open('acme') === 0);
    const second = await b.acquire(tenant);
    expect(second).not.toBeNull();
    expect(await second!.session.list('/')).toBeInstanceOf(Array);
    // The budget held throughout: never two logins at once on the server.
    expect(env.ftp.maxConcurrentLoginsByUser().acme).toBe(1);
    await b.release(second!);
  });

  it('a job waiting for a hand-over of its own busy session also takes a slot another replica gives back', async () => {
    env = await makeTestEnv('pool-poll', { tenant: { maxConnections: 2 } });
    const tenant = env.config.tenants[0]!;
    const a = replicaPool(env, undefined, { wantAfterMs: 300 });
    const b = replicaPool(env);
    const busy = await a.acquire(tenant); // A's first job: still transferring
    const other = await b.acquire(tenant);
    await b.release(other!); // B has no more work of the tenant: its session is idle
    // A's second job: the budget (2) is used up, one slot by A's busy session. Without asking the
    // budget again it would wait for that one (up to handoffWaitMs, 5 s), running the tenant on one
    // connection; after wantAfterMs it marks the tenant wanted and gets the slot B gives back.
    const started = Date.now();
    const second = await a.acquire(tenant);
    expect(second).not.toBeNull();
    expect(second!.session).not.toBe(busy!.session);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(a.open('acme')).toBe(2);
    expect(b.open('acme')).toBe(0);
    expect(env.ftp.maxConcurrentLoginsByUser().acme).toBe(2);
    await a.release(second!);
    await a.release(busy!);
  });

  it('a job waiting for its own busy session asks no other replica for its slot at first: it takes its own back, the other keeps its session', async () => {
    env = await makeTestEnv('pool-want-after', { tenant: { maxConnections: 2 } });
    const tenant = env.config.tenants[0]!;
    const a = replicaPool(env, undefined, { wantAfterMs: 3_000 });
    const b = replicaPool(env);
    const busy = await a.acquire(tenant);
    const other = await b.acquire(tenant);
    await b.release(other!); // idle in B, which checks for wanted tenants every 100 ms
    const second = a.acquire(tenant);
    // A's first job ends 800 ms later. Had A marked the tenant wanted at once, B would have logged its
    // idle session out by then and A logged in again with its slot: two logins for nothing.
    await delay(800);
    expect(b.open('acme')).toBe(1);
    await a.release(busy!);
    expect((await second)?.session).toBe(busy!.session);
    expect(b.open('acme')).toBe(1);
    expect(env.ftp.loginAttempts()).toHaveLength(2);
    await a.release((await second)!);
  });

  it('a session given back a moment ago keeps its slot while wanted (no logout and login per file); idle long enough, it goes', async () => {
    env = await makeTestEnv('pool-wanted-min', { tenant: { maxConnections: 1 } });
    const tenant = env.config.tenants[0]!;
    const a = replicaPool(env, undefined, { wantedMinIdleMs: 5_000 });
    const b = replicaPool(env);
    const first = await a.acquire(tenant);
    await a.release(first!);
    // B is refused and marks the tenant wanted; A's session has just been given back by its job.
    expect(await b.acquire(tenant)).toBeNull();
    await delay(300);
    // A's next job of the tenant takes the same session: no logout, no new login.
    const again = await a.acquire(tenant);
    expect(again?.session).toBe(first!.session);
    await a.release(again!);
    // Once it has stayed idle (A has no more work of the tenant), a refused B gets the slot.
    await waitFor(
      'B to get the slot',
      async () => {
        const lease = await b.acquire(tenant);
        if (lease) await b.release(lease, true);
        return lease !== null;
      },
      30_000,
    );
    expect(a.open('acme')).toBe(0);
    expect(env.ftp.maxConcurrentLoginsByUser().acme).toBe(1);
  });

  it('after closeAll (shutdown) a session given back is logged out at once and no new one is opened', async () => {
    env = await makeTestEnv('pool-closed');
    const tenant = env.config.tenants[0]!;
    const pool = replicaPool(env);
    const busy = await pool.acquire(tenant); // a poll or job still running at shutdown
    expect(busy).not.toBeNull();
    await pool.closeAll();
    expect(await pool.acquire(tenant)).toBeNull();
    await pool.release(busy!);
    expect(pool.open('acme')).toBe(0);
    await waitFor('the server to see the session end', () => env!.ftp.logins() === 0);
  });

  it('a lease that expired unrenewed (Redis out of reach) is not brought back: its session is logged out', async () => {
    env = await makeTestEnv('pool-lost', { tenant: { maxConnections: 1 } });
    const tenant = env.config.tenants[0]!;
    const budget = makeRedisBudget(env.redis, env.prefix, { leaseMs: 600 });
    const pool = replicaPool(env, budget);
    const lease = await pool.acquire(tenant);
    expect(lease).not.toBeNull();
    // What an expiry does while this replica cannot renew: the slot is gone from Redis…
    const slots = `${env.prefix}:{acme}:conn`;
    await env.redis.zrem(slots, lease!.id);
    // …and another replica takes it.
    const other = makeRedisBudget(env.redis, env.prefix);
    const otherLease = await other.tryAcquire('acme', 1);
    expect(typeof otherLease).toBe('string');
    // The next renewal finds the lease gone and does not add it back (the budget stays at 1).
    await waitFor('the renewal to notice the lost lease', () => budget.lost(lease!.id));
    expect(await env.redis.zcard(slots)).toBe(1);
    // Its session is logged out when the job gives it back, not kept idle without a slot.
    await pool.release(lease!);
    expect(pool.open('acme')).toBe(0);
    other.close();
    budget.close();
  });
});

describe('421 back-off (shared by replicas through Redis)', () => {
  it('each 421 in a row pauses the tenant’s logins longer; a successful login ends the series', async () => {
    env = await makeTestEnv('budget-pause');
    const a = makeRedisBudget(env.redis, env.prefix);
    const b = makeRedisBudget(env.redis, env.prefix);
    expect(await a.room('acme', 2)).toBe(2);
    expect((await a.lower('acme', 1, 60_000)).pausedMs).toBe(PAUSE_BASE_MS);
    // Another replica sees the pause: no slot, and how long to wait.
    const refused = await b.tryAcquire('acme', 2);
    expect(refused).toEqual({ pausedMs: expect.any(Number) });
    expect((refused as { pausedMs: number }).pausedMs).toBeGreaterThan(PAUSE_BASE_MS - 500);
    expect(await b.room('acme', 2)).toBeLessThan(0);
    expect((await b.lower('acme', 1, 60_000)).pausedMs).toBe(2 * PAUSE_BASE_MS);
    expect((await a.lower('acme', 1, 60_000)).pausedMs).toBe(4 * PAUSE_BASE_MS);
    // The pause is capped.
    for (let i = 0; i < 12; i++) await a.lower('acme', 1, 60_000);
    expect((await a.lower('acme', 1, 60_000)).pausedMs).toBe(PAUSE_MAX_MS);
    // A login that got through ends the series: the next 421 starts again from the base.
    await a.loggedIn('acme');
    expect((await a.lower('acme', 1, 60_000)).pausedMs).toBe(PAUSE_BASE_MS);
    // The lowered budget (1 slot) holds once the pause is over.
    await env.redis.del(`${env.prefix}:{acme}:conn-pause`);
    expect(await a.room('acme', 2)).toBe(1);
    a.close();
    b.close();
  });

  it('a server answering 421 to every login: jobs wait out the growing pause, not counted as attempts, asking Vela only when they may log in', async () => {
    // A job per file (groups bounce the same way: test/groups.test.ts).
    env = await makeTestEnv('budget-421', {
      vela: true,
      config: { worker: { concurrency: 4, groupFiles: 1 } },
    });
    for (let i = 0; i < 3; i++) await writeFileDeep(env.root, `calls/${i}.wav`, 2_000);
    const poller = await env.start({ role: 'poller' });
    await poller.poller!.pollNow('acme');
    await poller.poller!.pollNow('acme');
    await poller.close();
    env.ftp.faults.maxLogins = 0;
    const daemon = await env.start({ role: 'worker' });
    await delay(4_000);
    const jobs = await daemon.syncQueue.getJobs(['delayed', 'waiting', 'prioritized', 'active', 'failed']);
    expect(jobs).toHaveLength(3);
    expect(jobs.every((j) => j.attemptsMade === 0)).toBe(true);
    // Logins were tried in waves (the pause grows: 2 s, then 4 s), not once per bounce of every job
    // (0.25–0.75 s each: a dozen or more in 4 s); a job bouncing off the pause asks Vela nothing.
    expect(env.ftp.refusedLogins()).toBeGreaterThanOrEqual(1);
    expect(env.ftp.refusedLogins()).toBeLessThanOrEqual(6);
    // At most two waves of the three jobs in 4 s (at 0 s and after the 2 s pause) ask Vela.
    expect(env.vela!.calls().length).toBeLessThanOrEqual(6);
    expect(env.logs.text()).toContain('pausing logins');
    // The server lets logins in again: everything syncs, each Vela-checked once.
    env.ftp.faults.maxLogins = undefined;
    await env.redis.del(`${env.prefix}:{acme}:conn-pause`);
    await waitIdle(daemon.syncQueue, 30_000);
    expect((await listAll(env.s3.directClient, env.s3.bucket, 'acme/')).length).toBe(3);
    expect(env.vela!.calls().every((c) => c.org_id === 'acme' && c.status === 200)).toBe(true);
  });

  it('jobs of a tenant whose slots another replica holds go back to the queue without asking Vela', async () => {
    env = await makeTestEnv('budget-full', {
      vela: true,
      tenant: { maxConnections: 1 },
      config: { worker: { concurrency: 4, groupFiles: 1 } },
    });
    for (let i = 0; i < 2; i++) await writeFileDeep(env.root, `calls/${i}.wav`, 2_000);
    const poller = await env.start({ role: 'poller' });
    await poller.poller!.pollNow('acme');
    await poller.poller!.pollNow('acme');
    await poller.close();
    const other = makeRedisBudget(env.redis, env.prefix);
    const held = await other.tryAcquire('acme', 1);
    expect(typeof held).toBe('string');
    const daemon = await env.start({ role: 'worker' });
    await delay(3_000);
    const jobs = await daemon.syncQueue.getJobs(['delayed', 'waiting', 'prioritized', 'active']);
    expect(jobs).toHaveLength(2);
    expect(jobs.every((j) => j.attemptsMade === 0 && j.attemptsStarted >= 2)).toBe(true);
    expect(env.vela!.calls()).toHaveLength(0);
    await other.release('acme', held as string);
    other.close();
    await waitIdle(daemon.syncQueue, 30_000);
    expect(env.vela!.calls()).toHaveLength(2);
  });
});
