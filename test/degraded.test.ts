/**
 * Operator issue: what a poll finds wrong without the whole tenant being down, against the in-process
 * FTP server (ftp-srv) and real Redis and S3.
 * - One configured directory missing (`dirs: [/calls, /nope]`): `/calls` is synced, the tenant is
 *   *degraded* and `status` names `/nope` (text and JSON). All missing: unhealthy, as before.
 * - Names that can never be synced (a tab, a newline in the name) are counted per poll, logged once
 *   with a sample, shown in `status` and in `/metrics`.
 * - A daemon without FTPSYNC_SECRET_KEY: refuses to start when onboarded tenants exist (naming the
 *   variable); a tenant onboarded while it runs is marked unhealthy with that reason and its polls
 *   back off (no "poll failed" every interval).
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTenantStore } from '../src/adapters/redis-tenants.js';
import { makeStyle } from '../src/cli/render.js';
import { renderStatus } from '../src/cli/status.js';
import { ConfigError } from '../src/config.js';
import { openOps } from '../src/ops/context.js';
import { getStatus } from '../src/ops/status.js';
import { testTenant } from '../src/ops/tenants.js';
import { makeTestEnv, passwordOf, type TestEnv, waitIdle } from './support/daemon.js';
import { writeFileDeep } from './support/fs.js';

let env: TestEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

async function statusOf(e: TestEnv, org: string) {
  const ops = openOps(e.config, e.logs.log);
  try {
    return await getStatus(ops, { org });
  } finally {
    await ops.close();
  }
}

const plain = makeStyle(false);

describe('a tenant with one missing directory and names that cannot be synced', () => {
  it('syncs the directory that exists, is degraded naming the missing one, counts the unsyncable names', async () => {
    env = await makeTestEnv('degraded', { tenant: { dirs: ['/calls', '/nope'] } });
    await writeFileDeep(env.root, 'calls/a.wav', 1_000);
    await writeFileDeep(env.root, 'calls/tab\there.wav', 500);
    await writeFileDeep(env.root, 'calls/rec\nording.wav', 700);
    const d = await env.start();
    await d.poller!.pollNow('acme');
    const second = await d.poller!.pollNow('acme');
    expect(second).toMatchObject({ kind: 'done', missingDirs: ['/nope'] });
    await waitIdle(d.syncQueue);
    expect(await env.store.head('acme/calls/a.wav')).toMatchObject({ size: 1_000 });

    const status = await statusOf(env, 'acme');
    const acme = status.tenants[0]!;
    expect(acme).toMatchObject({
      health: 'degraded',
      missingDirs: ['/nope'],
      reason: '/nope not found on the server (check dirs)',
    });
    // The tab and the two halves of the name cut by the newline: at least two names, a sample of them.
    expect(acme.unsyncable.count).toBeGreaterThanOrEqual(2);
    expect(acme.unsyncable.sample).toContain(JSON.stringify('tab\there.wav'));
    expect(status.totals).toMatchObject({ degraded: 1, unhealthy: 0 });
    // JSON as `status --json` prints it.
    expect(JSON.parse(JSON.stringify(status)).tenants[0]).toMatchObject({
      health: 'degraded',
      missingDirs: ['/nope'],
      unsyncable: { count: acme.unsyncable.count },
    });
    const text = renderStatus(status, plain, Date.now()).join('\n');
    expect(text).toContain('DEGRADED: missing /nope');
    expect(text).toContain('degraded: /nope not found on the server');
    expect(text).toMatch(/\d+ name\(s\) cannot be synced .*"tab\\there\.wav"/);
    expect(text).toMatch(/totals: 1 tenant\(s\), 1 degraded/);

    // Two polls, one warning of each kind (said again only when it changes).
    const lines = env.logs.lines.map((l) => JSON.parse(l) as { msg: string; level: number });
    expect(lines.filter((l) => l.msg.startsWith('tenant degraded: /nope'))).toHaveLength(1);
    expect(lines.filter((l) => /name\(s\) listed cannot be synced/.test(l.msg))).toHaveLength(1);
    // A scheduled poll (the poll queue's worker reports to the metrics; pollNow does not).
    await d.poller!.queue.add('poll', { org: 'acme' });
    let metrics = '';
    for (let i = 0; i < 100 && !/^ftpsync_poll_missing_dirs/m.test(metrics); i++) {
      await delay(100);
      metrics = await d.metrics.render();
    }
    expect(metrics).toMatch(/^ftpsync_poll_missing_dirs\{org="acme"\} 1$/m);
    expect(metrics).toMatch(/^ftpsync_poll_unsyncable_names\{org="acme"\} [2-9]$/m);
    expect(metrics).toMatch(/^ftpsync_tenant_healthy\{org="acme"\} 1$/m);

    // `tenants test` is a check of the set-up: it fails naming the missing directory.
    const ops = openOps(env.config, env.logs.log);
    try {
      expect(await testTenant(ops, 'acme')).toMatchObject({
        ok: false,
        failure: 'missing-directory',
        message: expect.stringContaining('/nope not found on the server'),
        matched: 2,
      });
    } finally {
      await ops.close();
    }

    // The directory appears: the next poll clears the degraded state.
    await writeFileDeep(env.root, 'nope/b.wav', 10);
    await d.poller!.pollNow('acme');
    expect((await statusOf(env, 'acme')).tenants[0]).toMatchObject({ health: 'ok', missingDirs: [] });
  });

  it('every configured directory missing: unhealthy, naming them (nothing to sync)', async () => {
    env = await makeTestEnv('all-missing', { tenant: { dirs: ['/nope', '/gone'] } });
    await writeFileDeep(env.root, 'calls/a.wav', 10);
    const d = await env.start({ role: 'poller' });
    await expect(d.poller!.pollNow('acme')).rejects.toThrow(
      'directories /nope, /gone not found on the server (check dirs)',
    );
    expect((await statusOf(env, 'acme')).tenants[0]).toMatchObject({
      health: 'unhealthy',
      reason: 'directories /nope, /gone not found on the server (check dirs)',
    });
  });
});

describe('a daemon without FTPSYNC_SECRET_KEY', () => {
  const onboard = async (e: TestEnv, key: string) =>
    makeTenantStore(e.redis, { ...e.config, secretKey: key }).add({
      tenant: {
        org: 'initech',
        ftp: { host: '127.0.0.1', port: e.ftp.port, secure: false },
        dirs: ['/'],
      },
      user: 'acme',
      password: passwordOf('acme'),
    });

  it('refuses to start when onboarded tenants exist, naming the variable', async () => {
    env = await makeTestEnv('no-key-start');
    await onboard(env, randomBytes(32).toString('hex'));
    const err = await env.start().catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain('FTPSYNC_SECRET_KEY is not set');
  });

  it('a tenant onboarded while it runs is unhealthy with the reason, and its polls back off', async () => {
    env = await makeTestEnv('no-key-later');
    const d = await env.start({ role: 'poller' });
    await onboard(env, randomBytes(32).toString('hex'));
    // The daemon's tenant list is cached for a few seconds: poll until it knows the new tenant.
    let first: unknown;
    for (let i = 0; i < 100 && first === undefined; i++) {
      first = await d.poller!.pollNow('initech').then(
        (o) => (o.kind === 'skipped' ? undefined : o),
        (e: Error) => e,
      );
      if (first === undefined) await delay(100);
    }
    expect(first).toBeInstanceOf(Error);
    expect((first as Error).message).toMatch(/FTPSYNC_SECRET_KEY is not set/);
    // The backoff: the next poll does not even try.
    expect(await d.poller!.pollNow('initech')).toEqual({ kind: 'skipped' });
    const initech = (await statusOf(env, 'initech')).tenants[0]!;
    expect(initech.health).toBe('unhealthy');
    expect(initech.reason).toMatch(/onboarded tenant "initech".*FTPSYNC_SECRET_KEY is not set/);
    // The config tenant is unaffected.
    expect((await d.poller!.pollNow('acme')).kind).toBe('done');
  });
});
