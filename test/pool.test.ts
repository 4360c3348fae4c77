/**
 * The session pool across replicas: an idle session holds a slot of the tenant's connection budget,
 * and gives it back early when another replica is refused a slot (invariant 5 stays whole: the
 * budget is never exceeded while the slot changes hands).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRedisBudget } from '../src/adapters/redis-budget.js';
import { connectSource } from '../src/adapters/source.js';
import { makeSessionPool, type SessionPool } from '../src/sync/pool.js';
import { makeTestEnv, passwordOf, type TestEnv } from './support/daemon.js';

let env: TestEnv | undefined;
const pools: SessionPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.closeAll()));
  await env?.stop();
  env = undefined;
});

/** One replica's pool: its own budget client over the shared Redis, sessions idle for a minute. */
function replicaPool(e: TestEnv): SessionPool {
  const budget = makeRedisBudget(e.redis, e.prefix);
  const pool = makeSessionPool({
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

async function until(check: () => boolean, what: string, ms = 5_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
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
    await until(() => a.open('acme') === 0, "A's idle session to close");
    const second = await b.acquire(tenant);
    expect(second).not.toBeNull();
    expect(await second!.session.list('/')).toBeInstanceOf(Array);
    // The budget held throughout: never two logins at once on the server.
    expect(env.ftp.maxConcurrentLoginsByUser().acme).toBe(1);
    await b.release(second!);
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
    await until(() => env!.ftp.logins() === 0, 'the server to see the session end');
  });
});
