/**
 * Zip batches end to end in the daemon: a zip dropped on a tenant's FTP server is synced like any
 * file and then expanded by the worker; an operator's import (`ftp-sync batch import`'s function)
 * goes the same way. Real ftp-srv, s3rver, redis-server and Vela stand-in.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/main.js';
import { batchStatus, importArchive } from '../src/ops/batch.js';
import { openOps } from '../src/ops/context.js';
import { resync } from '../src/ops/resync.js';
import type { BatchRecord } from '../src/ports/batches.js';
import { makeRoot, type Root } from '../src/root.js';
import { captureLog, makeTestEnv, type TestEnv, waitIdle } from './support/daemon.js';
import { writeFileDeep } from './support/fs.js';
import { getObjectBuffer } from './support/s3.js';
import { hasSshd, type SshdServer, startSshd } from './support/sshd.js';
import { hasVsftpd, startVsftpd, type VsftpdServer } from './support/vsftpd.js';
import { waitFor } from './support/wait.js';

describe('zip batches in the daemon', () => {
  let env: TestEnv;
  let daemon: Daemon;
  let root: Root;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    env = await makeTestEnv('batch-e2e', { vela: true });
    const src = join(env.root, '..', `${env.prefix}-zipsrc`);
    files.set('calls/a.wav', randomBytes(150_000));
    files.set('calls/b.wav', randomBytes(90_000));
    files.set('calls/calls.csv', Buffer.from('file,email,date_of_call\na.wav,ann@acme.example,2024-03-05\n'));
    for (const [p, b] of files) await writeFileDeep(src, p, b);
    await writeFileDeep(env.root, 'drop/.keep', '');
    execFileSync('zip', ['-qr', join(env.root, 'drop', 'export.zip'), 'calls'], { cwd: src });
    execFileSync('zip', ['-qr', join(src, 'manual.zip'), 'calls'], { cwd: src });
    daemon = await env.start();
    // The CLI's root (same config), with the test's S3 client.
    root = makeRoot(env.config, captureLog('silent').log, { tenantCacheMs: 0, store: env.store });
  }, 120_000);

  afterAll(async () => {
    await root?.close();
    await env?.stop();
  });

  const settled = (id: string) =>
    waitFor(
      `batch ${id} settled`,
      async () => {
        const b = await root.batches().get(id);
        return b && ['done', 'failed', 'parked'].includes(b.state) ? b : undefined;
      },
      60_000,
    ) as Promise<BatchRecord>;

  it('a zip dropped on the FTP server is synced as an object, then expanded into calls', async () => {
    await daemon.poller!.pollNow('acme');
    await daemon.poller!.pollNow('acme');
    await waitIdle(daemon.syncQueue);
    expect(await env.store.head('acme/drop/export.zip')).toBeDefined();
    const [status] = await waitFor('a batch', async () => {
      const list = await batchStatus(root, { org: 'acme' });
      return list.length ? list : undefined;
    });
    const b = await settled(status!.batch.id);
    expect(b).toMatchObject({ state: 'done', via: 'source', counts: { synced: 3, rejected: 0 } });
    for (const [p, body] of files) {
      const got = await getObjectBuffer(env.s3.client, env.s3.bucket, `acme/drop/export.zip/${p}`);
      expect(got.equals(body), p).toBe(true);
    }
    const a = await env.store.head('acme/drop/export.zip/calls/a.wav');
    expect(a?.metadata).toMatchObject({ email: 'ann@acme.example', 'metadata-source': 'manifest' });
    expect(await env.store.head('acme/drop/export.zip.report.json')).toBeDefined();
  }, 120_000);

  it('batch import of a local zip: uploaded to S3, expanded; its entries are duplicates of the dropped ones', async () => {
    const src = join(env.root, '..', `${env.prefix}-zipsrc`);
    let progress = 0;
    const rec = await importArchive(root, 'acme', join(src, 'manual.zip'), (sent) => {
      progress = sent;
    });
    expect(progress).toBe(rec.size);
    expect(rec.key).toBe('acme/batches/manual.zip');
    const b = await settled(rec.id);
    expect(b).toMatchObject({ state: 'done', via: 'cli', counts: { duplicate: 3 } });
    const [one] = await batchStatus(root, { id: rec.id });
    // Info-ZIP adds the directory `calls/` as an entry of its own: ignored.
    expect(one?.entries?.map((e) => [e.name, e.outcome]).sort()).toEqual([
      ['calls/', 'ignored'],
      ['calls/a.wav', 'duplicate'],
      ['calls/b.wav', 'duplicate'],
      ['calls/calls.csv', 'duplicate'],
    ]);
  }, 120_000);
});

describe.skipIf(!hasSshd())('a zip dropped on an SFTP tenant', () => {
  let server: SshdServer;
  let env: TestEnv;
  let root: Root;

  beforeAll(async () => {
    server = await startSshd();
    const src = join(server.root, '..', 'zipsrc');
    await writeFileDeep(src, 'calls/x.wav', randomBytes(80_000));
    await writeFileDeep(server.root, 'calls/.keep', '');
    execFileSync('zip', ['-qr', join(server.root, 'calls', 'sftp-export.zip'), 'calls'], { cwd: src });
    env = await makeTestEnv('batch-sftp', {
      tenant: {
        ftp: undefined,
        sftp: {
          host: '127.0.0.1',
          port: server.port,
          user: server.user,
          password: server.password,
          hostKeyFingerprint: server.hostKeyFingerprint,
        },
        dirs: [`${server.root}/calls`],
      },
    });
    root = makeRoot(env.config, captureLog('silent').log, { tenantCacheMs: 0, store: env.store });
  }, 120_000);

  afterAll(async () => {
    await root?.close();
    await env?.stop();
    await server?.stop();
  });

  it('is synced, then expanded', async () => {
    const daemon = await env.start();
    await daemon.poller!.pollNow('acme');
    await daemon.poller!.pollNow('acme');
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    const status = await waitFor('a batch', async () => {
      const list = await batchStatus(root, { org: 'acme' });
      return list.find((b) => ['done', 'failed'].includes(b.batch.state));
    });
    expect(status?.batch).toMatchObject({ state: 'done', via: 'source', counts: { synced: 1 } });
    const prefix = `acme/${server.root.slice(1)}/calls/sftp-export.zip/`;
    expect(await env.store.head(`${prefix}calls/x.wav`)).toMatchObject({ size: 80_000 });
  }, 120_000);
});

describe.skipIf(!hasVsftpd() && !process.env.CI)('a zip dropped on a vsftpd tenant', () => {
  let env: TestEnv;
  let vsftpd: VsftpdServer;
  let root: Root;

  afterAll(async () => {
    await root?.close();
    await env?.stop();
    await vsftpd?.stop();
  });

  it('is synced, then expanded', async () => {
    env = await makeTestEnv('batch-vsftpd');
    const src = join(env.root, '..', `${env.prefix}-vsrc`);
    const body = randomBytes(60_000);
    await writeFileDeep(src, 'calls/v.wav', body);
    await writeFileDeep(env.root, 'in/.keep', '');
    execFileSync('zip', ['-qr', join(env.root, 'in', 'vs.zip'), 'calls'], { cwd: src });
    vsftpd = await startVsftpd({ root: env.root });
    const [tenant] = env.config.tenants;
    const config = {
      ...env.config,
      tenants: [
        {
          ...tenant!,
          ftp: { ...tenant!.ftp!, port: vsftpd.port, user: vsftpd.user, password: vsftpd.password },
        },
      ],
    };
    const daemon = await env.start({ config });
    root = makeRoot(config, captureLog('silent').log, { tenantCacheMs: 0, store: env.store });
    await daemon.poller!.pollNow('acme');
    await daemon.poller!.pollNow('acme');
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    const status = await waitFor('a batch', async () => {
      const list = await batchStatus(root, { org: 'acme' });
      return list.find((b) => ['done', 'failed'].includes(b.batch.state));
    });
    expect(status?.batch).toMatchObject({ state: 'done', via: 'source', counts: { synced: 1 } });
    const got = await getObjectBuffer(env.s3.client, env.s3.bucket, 'acme/in/vs.zip/calls/v.wav');
    expect(got.equals(body)).toBe(true);
  }, 120_000);
});

describe('resync releases the parked entries of a zip batch', () => {
  let env: TestEnv | undefined;
  let root: Root | undefined;
  afterEach(async () => {
    await root?.close();
    await env?.stop();
    root = undefined;
    env = undefined;
  });

  async function parkedBatch(name: string, opts: Parameters<typeof makeTestEnv>[1], overAllocation: boolean) {
    env = await makeTestEnv(name, {
      vela: true,
      // The worker's own recheck would come only after an hour: what releases them here is resync.
      ...opts,
      config: { defaults: { pollInterval: '1h', minFileAge: '1ms', allocationRecheck: '1h' } },
    });
    const src = join(env.root, '..', `${env.prefix}-zipsrc`);
    const files = new Map([
      ['calls/p1.wav', randomBytes(40_000)],
      ['calls/p2.wav', randomBytes(30_000)],
    ]);
    for (const [p, b] of files) await writeFileDeep(src, p, b);
    execFileSync('zip', ['-qr', join(src, 'parked.zip'), 'calls'], { cwd: src });
    if (overAllocation) env.vela!.setAllocation('acme', { status: 'exceeded' });
    await env.start();
    root = makeRoot(env.config, captureLog('silent').log, { tenantCacheMs: 0, store: env.store });
    const rec = await importArchive(root, 'acme', join(src, 'parked.zip'));
    const b = await waitFor(
      'batch parked',
      async () => {
        const got = await root!.batches().get(rec.id);
        return got?.state === 'parked' ? got : undefined;
      },
      60_000,
    );
    expect(b.counts).toMatchObject({ parked: 2, synced: 0 });
    const parked = await env.state.parked('acme');
    expect(parked.map((p) => p.jobId)).toEqual([rec.id, rec.id]);
    for (const p of files.keys())
      expect(await env.store.head(`acme/batches/parked.zip/${p}`)).toBeUndefined();
    return { rec, files, parked };
  }

  async function releasedAndSynced(rec: BatchRecord, files: Map<string, Buffer>) {
    const ops = openOps(env!.config, env!.logs.log);
    try {
      const plan = await resync(ops, { org: 'acme' });
      expect(plan.released).toBe(2);
    } finally {
      await ops.close();
    }
    const b = await waitFor(
      'batch done',
      async () => {
        const got = await root!.batches().get(rec.id);
        return got?.state === 'done' ? got : undefined;
      },
      30_000,
    );
    expect(b.counts).toMatchObject({ synced: 2, parked: 0 });
    expect(await env!.state.parked('acme')).toEqual([]);
    for (const [p, body] of files) {
      const got = await getObjectBuffer(env!.s3.client, env!.s3.bucket, `acme/batches/parked.zip/${p}`);
      expect(got.equals(body), p).toBe(true);
    }
    const report = JSON.parse(
      (
        await getObjectBuffer(env!.s3.client, env!.s3.bucket, 'acme/batches/parked.zip.report.json')
      ).toString(),
    ) as { batch: BatchRecord; entries: { name: string; outcome: string }[] };
    expect(report.batch.state).toBe('done');
    expect(
      report.entries
        .filter((e) => e.name.endsWith('.wav'))
        .map((e) => [e.name, e.outcome])
        .sort(),
    ).toEqual([
      ['calls/p1.wav', 'synced'],
      ['calls/p2.wav', 'synced'],
    ]);
  }

  it('over allocation: entries parked; allocation raised at Vela; resync --org → synced, report updated', async () => {
    const { rec, files, parked } = await parkedBatch('batch-resync', {}, true);
    expect(parked[0]).toMatchObject({ reason: 'allocation-exceeded' });
    env!.vela!.setAllocation('acme', { minutes: 30 });
    await releasedAndSynced(rec, files);
    // Vela was asked again for each entry (the recheck), and said yes.
    const calls = env!.vela!.calls().filter((c) => c.org_id === 'acme');
    expect(calls.filter((c) => c.status === 200).length).toBeGreaterThanOrEqual(4);
  }, 120_000);

  it('requireManifest with no row: entries parked missing-metadata; resync lets them go on without one', async () => {
    const { rec, files, parked } = await parkedBatch(
      'batch-resync-meta',
      {
        tenant: {
          metadata: { defaultEmail: 'agent@acme.example', requireManifest: true, manifestWait: '0s' },
        },
      },
      false,
    );
    expect(parked[0]).toMatchObject({ reason: 'missing-metadata' });
    await releasedAndSynced(rec, files);
  }, 120_000);
});
