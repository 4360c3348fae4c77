/**
 * A tenant-level failure in the middle of a backlog (the customer changed the FTP password): its
 * queued jobs must neither fail for good (that would lose them until someone resyncs) nor each try to
 * log in (a storm of bad logins can lock the account). They park, visible with the reason, and the
 * first successful poll after the fix releases them. Other tenants are not touched.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { openOps } from '../src/ops/context.js';
import { getStatus } from '../src/ops/status.js';
import { makeTestEnv, passwordOf, SECRETS, type TestEnv, waitIdle } from './support/daemon.js';
import { writeFileDeep } from './support/fs.js';
import { listAll } from './support/s3.js';
import { waitFor } from './support/wait.js';

let env: TestEnv | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

describe('a tenant that becomes unhealthy with jobs queued', () => {
  it('parks its jobs (no failure, no attempt, no login storm) and releases them after the first good poll', async () => {
    env = await makeTestEnv('tenant-health', { moreTenants: ['globex'] });
    for (let i = 0; i < 6; i++) await writeFileDeep(env.root, `acme/calls/${i}.wav`, 1_000 + i);
    await writeFileDeep(env.root, 'globex/calls/old.wav', 500);
    const poller = await env.start({ role: 'poller' });
    await poller.poller!.pollNow('acme');
    await poller.poller!.pollNow('acme');
    await poller.close();

    // The customer changes the password; our copy is now wrong.
    env.ftp.setPassword('acme', 'changed-by-the-customer');
    const worker = await env.start({ role: 'worker' });
    await waitFor(
      'all six jobs parked as tenant-unhealthy',
      async () =>
        (await env!.state.parked('acme')).filter((p) => p.reason === 'tenant-unhealthy').length === 6,
    );
    const attemptsSoFar = env.ftp.loginAttempts().filter((a) => a.user === 'acme').length;
    // A few jobs tried (each once, then once more after refetching the credentials), not all six.
    expect(attemptsSoFar).toBeGreaterThanOrEqual(2);
    expect(attemptsSoFar).toBeLessThanOrEqual(8);
    const jobs = await worker.syncQueue.getJobs(['delayed', 'failed', 'waiting', 'prioritized', 'active']);
    expect(jobs).toHaveLength(6);
    expect(jobs.every((j) => j.attemptsMade === 0)).toBe(true);
    expect(await worker.syncQueue.getFailedCount()).toBe(0);
    const info = await env.state.info('acme');
    expect(info.health).toBe('unhealthy');
    expect(info.reason).toContain('530');

    // Status shows why they wait.
    const ops = openOps(env.config, env.logs.log);
    try {
      const acme = (await getStatus(ops, { org: 'acme' })).tenants[0]!;
      expect(acme.parked).toHaveLength(6);
      expect(acme.parked[0]).toMatchObject({
        reason: 'tenant-unhealthy',
        detail: expect.stringContaining('530'),
      });
    } finally {
      await ops.close();
    }

    // Meanwhile the jobs do not keep logging in, and another tenant syncs as usual.
    await writeFileDeep(env.root, 'globex/calls/g.wav', 700);
    const both = await env.start({ role: 'poller' });
    await both.poller!.pollNow('globex');
    await both.poller!.pollNow('globex');
    await waitFor(
      'globex',
      async () => (await env!.state.getSynced('globex', 'globex/calls/g.wav')) !== undefined,
    );
    await delay(2_000);
    expect(env.ftp.loginAttempts().filter((a) => a.user === 'acme').length).toBe(attemptsSoFar);

    // The password is fixed on the server: the next poll succeeds, the tenant is healthy again and
    // its parked jobs run now (not at their ten-minute recheck).
    env.ftp.setPassword('acme', passwordOf('acme'));
    expect(passwordOf('acme')).toBe(SECRETS.ftpPassword);
    await both.poller!.pollNow('acme');
    expect((await env.state.info('acme')).health).toBe('ok');
    await waitIdle(worker.syncQueue, 30_000);
    expect((await listAll(env.s3.directClient, env.s3.bucket, 'acme/')).length).toBe(6);
    expect(env.logs.text()).toContain('tenant healthy again');
    expect(await env.state.parked('acme')).toEqual([]);
    expect(await worker.syncQueue.getFailedCount()).toBe(0);
  });
});
