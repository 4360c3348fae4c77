import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/main.js';
import { openOps } from '../src/ops/context.js';
import { resync } from '../src/ops/resync.js';
import { addTenant, updateTenant } from '../src/ops/tenants.js';
import { makeTestEnv, passwordOf, SECRETS, type TestEnv, waitIdle } from './support/daemon.js';
import { writeFileDeep } from './support/fs.js';
import { listAll } from './support/s3.js';
import { waitFor } from './support/wait.js';

const SECRET_KEY = randomBytes(32).toString('hex');

describe('tenants, Vela allocation and call metadata', () => {
  let env: TestEnv | undefined;
  afterEach(async () => {
    if (env) {
      const text = env.logs.text();
      for (const secret of [SECRETS.ftpPassword, SECRETS.velaToken, SECRET_KEY, 'rotated-Pa55-2']) {
        expect(text, 'a secret appeared in the logs').not.toContain(secret);
      }
      await env.stop();
    }
    env = undefined;
  });

  async function twoPolls(daemon: Daemon, org: string) {
    await daemon.poller!.pollNow(org);
    return daemon.poller!.pollNow(org);
  }

  it('parks the recordings of a tenant over its allocation, syncs the other, releases on raise and on resync', async () => {
    env = await makeTestEnv('alloc', {
      vela: true,
      moreTenants: ['globex'],
      config: { defaults: { pollInterval: '1h', minFileAge: '1ms', allocationRecheck: '2s' } },
    });
    env.vela!.setAllocation('acme', { status: 'exceeded' });
    env.vela!.setAllocation('globex', { minutes: 100, voiceId: 'enrolled' });
    for (let i = 0; i < 4; i++) {
      await writeFileDeep(env.root, `acme/calls/a${i}.wav`, 2000);
      await writeFileDeep(env.root, `globex/calls/g${i}.wav`, 2000);
    }
    const daemon = await env.start();
    await twoPolls(daemon, 'acme');
    await twoPolls(daemon, 'globex');

    // globex arrives in full, with its Vela voice_id status on the objects.
    await waitFor('globex synced', async () => (await env!.state.allSynced('globex')).size === 4);
    const head = await env.store.head('globex/globex/calls/g0.wav');
    expect(head?.metadata).toMatchObject({
      email: 'agent@globex.example',
      'voice-id': 'enrolled',
      org: 'globex',
    });

    // acme: parked, visible with reason and time, not failed, nothing uploaded.
    const parked = await waitFor('acme parked', async () => {
      const p = await env!.state.parked('acme');
      return p.length === 4 ? p : undefined;
    });
    expect(parked[0]).toMatchObject({ reason: 'allocation-exceeded' });
    expect(parked[0]!.since).toBeGreaterThan(Date.now() - 60_000);
    expect(await daemon.syncQueue.getFailedCount()).toBe(0);
    expect((await listAll(env.s3.directClient, env.s3.bucket, 'acme/')).length).toBe(0);
    const calls = env.vela!.calls().filter((c) => c.org_id === 'acme');
    expect(calls[0]).toMatchObject({ email: 'agent@acme.example', status: 200 });
    expect(calls[0]!.date_of_call).toMatch(/^\d{4}-\d{2}-\d{2}$/);

    // Raising the allocation: the files arrive within one recheck interval (2 s here).
    env.vela!.setAllocation('acme', { minutes: 30 });
    await waitFor('acme released', async () => (await env!.state.allSynced('acme')).size === 4, 10_000);
    expect(await env.state.parked('acme')).toEqual([]);

    // Over again; resync releases at once (no waiting for the recheck).
    env.vela!.setAllocation('acme', { status: 'exceeded' });
    await writeFileDeep(env.root, 'acme/calls/late.wav', 1000);
    await twoPolls(daemon, 'acme');
    await waitFor('late parked', async () => (await env!.state.parked('acme')).length === 1);
    env.vela!.setAllocation('acme', { minutes: 5 });
    const ops = openOps(env.config, env.logs.log);
    try {
      const started = Date.now();
      const plan = await resync(ops, { org: 'acme' });
      expect(plan.released).toBe(1);
      await waitFor(
        'late synced',
        async () => (await env!.state.getSynced('acme', 'acme/calls/late.wav')) ?? false,
      );
      expect(Date.now() - started).toBeLessThan(1_900);
    } finally {
      await ops.close();
    }
  });

  it('waits through a Vela outage: jobs retry with backoff and complete when it returns, none failed', async () => {
    env = await makeTestEnv('vela-down', { vela: true });
    for (let i = 0; i < 3; i++) await writeFileDeep(env.root, `calls/d${i}.wav`, 1000);
    env.vela!.setDown(503);
    const daemon = await env.start();
    await twoPolls(daemon, 'acme');
    await waitFor('every job tried at least once', async () => {
      const jobs = await daemon.syncQueue.getJobs(['delayed', 'waiting', 'prioritized', 'active']);
      return jobs.length === 3 && jobs.every((j) => j.attemptsMade >= 1);
    });
    await delay(1500);
    env.vela!.setDown('refuse');
    await delay(1500);
    env.vela!.setDown(false);
    for (const j of await daemon.syncQueue.getJobs(['delayed'])) await j.promote().catch(() => {});
    const counts = await waitIdle(daemon.syncQueue, 60_000);
    expect(counts.failed).toBe(0);
    expect((await env.state.allSynced('acme')).size).toBe(3);
    expect(env.vela!.calls().some((c) => c.status === 503)).toBe(true);
  });

  it('a 4xx from Vela fails the job with a reason naming the tenant and the status; other tenants go on', async () => {
    env = await makeTestEnv('vela-4xx', { vela: 'strict', moreTenants: ['globex'] });
    env.vela!.setAllocation('globex', { minutes: 10 });
    await writeFileDeep(env.root, 'globex/calls/ok.wav', 1000);
    await writeFileDeep(env.root, 'acme/calls/x.wav', 1000);
    const daemon = await env.start();
    await twoPolls(daemon, 'acme');
    await twoPolls(daemon, 'globex');
    const counts = await waitIdle(daemon.syncQueue);
    expect(counts.failed).toBe(1);
    const [failed] = await daemon.syncQueue.getFailed();
    expect(failed!.failedReason).toMatch(/acme/);
    expect(failed!.failedReason).toMatch(/404/);
    expect(failed!.attemptsMade).toBe(1);
    expect((await env.state.allSynced('globex')).size).toBe(1);
  });

  it('uses manifest rows, the filename pattern and the defaults, in that order; a late manifest releases a waiting recording', async () => {
    env = await makeTestEnv('metadata', {
      tenant: {
        metadata: {
          pattern: '^(?<email>[^_]+@[^_]+)_(?<date>\\d{4}-\\d{2}-\\d{2})_',
          defaultEmail: 'fallback@acme.example',
        },
      },
    });
    await writeFileDeep(
      env.root,
      'calls/manifest.tsv',
      'recording\temail\tdate_of_call\nm1.wav\tmia@acme.example\t2024-01-15\nbad.wav\tnot-an-email\t2024-01-15\n',
    );
    const daemon = await env.start();
    await twoPolls(daemon, 'acme');
    await waitIdle(daemon.syncQueue);
    await writeFileDeep(env.root, 'calls/m1.wav', 500);
    await writeFileDeep(env.root, 'calls/bob@acme.example_2024-02-01_x.wav', 500);
    await writeFileDeep(env.root, 'calls/plain.wav', 500);
    await twoPolls(daemon, 'acme');
    await waitIdle(daemon.syncQueue);
    const meta = async (p: string) => (await env!.store.head(`acme/calls/${p}`))?.metadata;
    expect(await meta('m1.wav')).toMatchObject({
      email: 'mia@acme.example',
      'date-of-call': '2024-01-15',
      'metadata-source': 'manifest',
    });
    expect(await meta('bob@acme.example_2024-02-01_x.wav')).toMatchObject({
      email: 'bob@acme.example',
      'date-of-call': '2024-02-01',
      'metadata-source': 'pattern',
    });
    expect(await meta('plain.wav')).toMatchObject({
      email: 'fallback@acme.example',
      'metadata-source': 'defaults',
    });
    const reports = (await listAll(env.s3.directClient, env.s3.bucket, 'acme/')).filter((o) =>
      o.key.endsWith('.errors.json'),
    );
    expect(reports.map((r) => r.key)).toEqual(['acme/calls/manifest.tsv.errors.json']);
    const status = await env.state.reports('acme');
    expect(status[0]).toMatchObject({ path: 'calls/manifest.tsv', rows: 2, accepted: 1, errorCount: 1 });
  });

  it('with requireManifest, a recording waits for its row and goes as soon as the manifest arrives', async () => {
    env = await makeTestEnv('late-manifest', {
      tenant: { metadata: { requireManifest: true, manifestWait: '10m' } },
    });
    await writeFileDeep(env.root, 'calls/r1.wav', 700);
    const daemon = await env.start();
    await twoPolls(daemon, 'acme');
    await delay(800);
    expect(await env.state.getSynced('acme', 'calls/r1.wav')).toBeUndefined();
    await writeFileDeep(
      env.root,
      'calls/day.csv',
      'file,email,date_of_call\nr1.wav,rae@acme.example,2024-05-06\n',
    );
    await twoPolls(daemon, 'acme');
    await waitFor(
      'r1 synced',
      async () => (await env!.state.getSynced('acme', 'calls/r1.wav')) ?? false,
      40_000,
    );
    expect((await env.store.head('acme/calls/r1.wav'))?.metadata).toMatchObject({
      email: 'rae@acme.example',
      'date-of-call': '2024-05-06',
      'metadata-source': 'manifest',
    });
  });

  it('onboards a tenant at run time, keeps its password encrypted, and picks up a rotated password after a 530', async () => {
    env = await makeTestEnv('onboard', { moreTenants: ['initech'], env: { FTPSYNC_SECRET_KEY: SECRET_KEY } });
    // initech is in the FTP server but not in the config file: it comes through onboarding.
    const config = { ...env.config, tenants: env.config.tenants.filter((t) => t.org !== 'initech') };
    await writeFileDeep(env.root, 'initech/calls/i1.wav', 900);
    const daemon = await env.start({ reconcileMs: 300, config });
    const ops = openOps(config, env.logs.log);
    try {
      await addTenant(ops, {
        org: 'initech',
        host: '127.0.0.1',
        port: env.ftp.port,
        secure: 'false',
        user: 'initech',
        password: passwordOf('initech'),
        dirs: ['/initech'],
        pollInterval: '1s',
      });
      // Not readable in clear anywhere in Redis.
      for (const key of await env.redis.keys(`${env.prefix}*`)) {
        const type = await env.redis.type(key);
        const dump =
          type === 'hash'
            ? JSON.stringify(await env.redis.hgetall(key))
            : type === 'string'
              ? await env.redis.get(key)
              : '';
        expect(dump ?? '').not.toContain(passwordOf('initech'));
      }
      await waitFor(
        'onboarded tenant synced',
        async () => (await env!.state.getSynced('initech', 'initech/calls/i1.wav')) ?? false,
        20_000,
      );

      // Rotate: the server and the stored credentials change; the worker's cached password fails with 530 once.
      env.ftp.setPassword('initech', 'rotated-Pa55-2');
      await addTenant(ops, {
        org: 'initech',
        host: '127.0.0.1',
        port: env.ftp.port,
        secure: 'false',
        user: 'initech',
        password: 'rotated-Pa55-2',
        dirs: ['/initech'],
        pollInterval: '1s',
      });
      await delay(1000); // idle sessions (logged in with the old password) have closed by now
      await writeFileDeep(env.root, 'initech/calls/i2.wav', 900);
      await waitFor(
        'synced after rotation',
        async () => (await env!.state.getSynced('initech', 'initech/calls/i2.wav')) ?? false,
        20_000,
      );
      expect((await env.state.info('initech')).health).toBe('ok');
      expect(env.logs.text()).toMatch(/530.*refetching credentials/);
    } finally {
      await ops.close();
    }
    expect(daemon).toBeDefined();
  });
  it('a running daemon picks up tenants update (settings and a rotated password) without a restart; the backoff ends', async () => {
    env = await makeTestEnv('update', { moreTenants: ['initech'], env: { FTPSYNC_SECRET_KEY: SECRET_KEY } });
    const config = { ...env.config, tenants: env.config.tenants.filter((t) => t.org !== 'initech') };
    await writeFileDeep(env.root, 'initech/calls/u1.wav', 900);
    await env.start({ reconcileMs: 300, config });
    const ops = openOps(config, env.logs.log);
    try {
      await addTenant(ops, {
        org: 'initech',
        host: '127.0.0.1',
        port: env.ftp.port,
        secure: 'false',
        user: 'initech',
        password: passwordOf('initech'),
        dirs: ['/initech'],
        pollInterval: '1s',
        minFileAge: '1ms',
        defaultEmail: 'first@initech.example',
      });
      await waitFor(
        'u1 synced',
        async () => (await env!.state.getSynced('initech', 'initech/calls/u1.wav')) ?? false,
        20_000,
      );
      expect((await env.store.head('initech/initech/calls/u1.wav'))?.metadata).toMatchObject({
        email: 'first@initech.example',
      });

      // The server's password changes: polls fail and back off.
      env.ftp.setPassword('initech', 'rotated-Pa55-2');
      await waitFor(
        'polls failing',
        async () => {
          const info = await env!.state.info('initech');
          return info.health === 'unhealthy' && info.pollFailures >= 2;
        },
        30_000,
      );

      // The operator gives the new password and new settings; no restart.
      await updateTenant(ops, {
        org: 'initech',
        password: 'rotated-Pa55-2',
        afterSync: 'delete',
        defaultEmail: 'second@initech.example',
      });
      expect((await env.state.info('initech')).pollFailures).toBe(0);
      await writeFileDeep(env.root, 'initech/calls/u2.wav', 900);
      const started = Date.now();
      await waitFor(
        'u2 synced after the update',
        async () => (await env!.state.getSynced('initech', 'initech/calls/u2.wav')) ?? false,
        20_000,
      );
      expect(Date.now() - started).toBeLessThan(15_000);
      expect((await env.state.info('initech')).health).toBe('ok');
      expect((await env.store.head('initech/initech/calls/u2.wav'))?.metadata).toMatchObject({
        email: 'second@initech.example',
      });
      // after-sync delete now applies: the synced source file goes.
      await waitFor(
        'u2 deleted on the server',
        async () => {
          try {
            await stat(join(env!.root, 'initech/calls/u2.wav'));
            return false;
          } catch {
            return true;
          }
        },
        20_000,
      );
    } finally {
      await ops.close();
    }
  });
});
