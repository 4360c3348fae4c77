/**
 * The call contract as the platform states it: `org_id` always, `email` and `date_of_call` only when
 * known (metadata is optional); a call record dropped with its recordings reaches every one of them
 * whatever the job order, the concurrency or the number of replicas (manifest first); a call record
 * that comes after its recordings were synced updates their objects' metadata in place.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/main.js';
import { makeEnqueue } from '../src/queue/enqueue.js';
import { versionJobId } from '../src/queue/jobs.js';
import type { SyncJobData } from '../src/types.js';
import { makeTestEnv, type TestEnv, waitIdle } from './support/daemon.js';
import { sha256, writeFileDeep } from './support/fs.js';
import { itNeeding, missing } from './support/needs.js';
import { listAll } from './support/s3.js';
import { startVsftpd, type VsftpdServer } from './support/vsftpd.js';
import { waitFor } from './support/wait.js';

const envs: TestEnv[] = [];
const servers: VsftpdServer[] = [];
afterEach(async () => {
  await Promise.allSettled(servers.splice(0).map((s) => s.stop()));
  await Promise.allSettled(envs.splice(0).map((e) => e.stop()));
});

async function env(name: string, opts: Parameters<typeof makeTestEnv>[1]): Promise<TestEnv> {
  const e = await makeTestEnv(name, opts);
  envs.push(e);
  return e;
}

/** Object metadata of every key under `prefix` (HEAD through the store under test). */

describe('manifest first: call records that do not index at once', () => {
  it('a call record uploaded but not indexed (the worker died in between) is indexed when its job runs again', async () => {
    const e = await env('contract-reindex', { vela: true, tenant: { metadata: {} } });
    await writeFileDeep(
      e.root,
      'records/r.csv',
      'file,email,date_of_call\nlate.wav,r@acme.example,2024-07-07\n',
    );
    const daemon = await e.start();
    await pollUntilDone(daemon, 'acme');
    await pollUntilDone(daemon, 'acme');
    await waitIdle(daemon.syncQueue);
    const csv = (await e.state.getSynced('acme', 'records/r.csv'))!;
    expect(csv).toBeDefined();
    // The state a kill -9 between the upload and the indexing leaves: synced, rows absent, still pending.
    const key = (name: string) => `${e.prefix.replace(/[{}]/g, '')}:{acme}:${name}`;
    // Its rows gone: the manifest-row buckets and their sizes (adapters/redis-compact.ts).
    for (const k of await e.redis.keys(`${key('mr')}:*`)) await e.redis.del(k);
    await e.redis.hdel(key('lh'), 'mr:l', 'mr:s', 'mr:n');
    await e.redis.zadd(
      key('manifests-pending'),
      String(Date.now()),
      `records/r.csv\n${csv.size}\n${csv.mtime}`,
    );
    const csvWrites = objectWrites(e, 'records/r.csv');

    await writeFileDeep(e.root, 'calls/late.wav', randomBytes(2_000));
    await pollUntilDone(daemon, 'acme');
    await pollUntilDone(daemon, 'acme');
    // The recording waits for the pending call record instead of going up without its row.
    await waitFor('the recording to wait for the call record', async () =>
      e.logs.text().includes('waiting for 1 call record(s)'),
    );
    expect(await e.store.head('acme/calls/late.wav')).toBeUndefined();

    // Its job runs again (a stalled job re-run): synced already, so it only indexes, from S3.
    const version = { path: 'records/r.csv', size: csv.size, mtime: csv.mtime, mtimeExact: false };
    await (await daemon.syncQueue.getJob(versionJobId('acme', version)))?.remove();
    await makeEnqueue(daemon.syncQueue, e.config, e.redis)('acme', [version]);
    await waitFor('late.wav in S3', async () => (await e.store.head('acme/calls/late.wav')) !== undefined);
    expect((await e.store.head('acme/calls/late.wav'))!.metadata).toMatchObject({
      email: 'r@acme.example',
      'date-of-call': '2024-07-07',
      'metadata-source': 'manifest',
    });
    expect(objectWrites(e, 'records/r.csv')).toBe(csvWrites);
  });

  it('a call record that fails for good stops holding recordings back', async () => {
    const e = await env('contract-failed-manifest', {
      vela: true,
      tenant: { maxFileSize: '1KiB', metadata: { manifestWait: '1h' } },
    });
    await writeFileDeep(
      e.root,
      'records/big.csv',
      `file,email,date_of_call\n${'x.wav,a@acme.example,2024-01-01\n'.repeat(100)}`,
    );
    for (let i = 0; i < 5; i++) await writeFileDeep(e.root, `calls/r${i}.wav`, randomBytes(500));
    const daemon = await e.start();
    await pollUntilDone(daemon, 'acme');
    await pollUntilDone(daemon, 'acme');
    await waitIdle(daemon.syncQueue, 30_000);
    const keys = (await listAll(e.s3.client, e.s3.bucket, 'acme/calls/')).map((o) => o.key);
    expect(keys).toHaveLength(5);
    expect((await daemon.syncQueue.getFailed()).map((j) => (j.data as SyncJobData).path)).toEqual([
      'records/big.csv',
    ]);
  });
});

async function metadataOf(e: TestEnv, keys: string[]): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>();
  for (const key of keys) out.set(key, (await e.store.head(key))!.metadata);
  return out;
}

const objectWrites = (e: TestEnv, key: string) =>
  e.s3
    .requests()
    .filter((r) => r.method === 'PUT' && r.status < 300 && !r.copySource)
    .filter((r) => decodeURIComponent(r.path.split('?')[0]!).endsWith(`/${key}`)).length;

describe('metadata is optional, end to end', () => {
  itNeeding(missing.vsftpd())(
    'a vsftpd tenant drops 46 recordings and one CSV naming 2: all 46 are synced, 44 as metadata-source none',
    async () => {
      const e = await env('contract-46', {
        vela: 'strict',
        // No pattern, no defaultEmail: nothing but the CSV gives metadata.
        tenant: { metadata: {} },
      });
      e.vela!.setAllocation('acme', { minutes: 500 });
      const hashes = new Map<string, string>();
      for (let i = 0; i < 46; i++) {
        const path = `calls/2024-03-0${(i % 5) + 1}/call-${String(i).padStart(3, '0')}.wav`;
        hashes.set(path, (await writeFileDeep(e.root, path, randomBytes(2_000 + i))).sha256);
      }
      await writeFileDeep(
        e.root,
        'records/calls.csv',
        'file,email,date_of_call\ncall-000.wav,ann@acme.example,2024-03-01\ncall-001.wav,raj@acme.example,2024-03-02\n',
      );
      const vsftpd = await startVsftpd({ root: e.root });
      servers.push(vsftpd);
      const [tenant] = e.config.tenants;
      const config = {
        ...e.config,
        tenants: [
          {
            ...tenant!,
            ftp: { ...tenant!.ftp!, port: vsftpd.port, user: vsftpd.user, password: vsftpd.password },
          },
        ],
      };
      const daemon = await e.start({ config });
      await daemon.poller!.pollNow('acme');
      expect(await daemon.poller!.pollNow('acme')).toMatchObject({ kind: 'done', enqueued: 47 });
      const counts = await waitIdle(daemon.syncQueue, 60_000);
      expect(counts.failed).toBe(0);

      const keys = (await listAll(e.s3.client, e.s3.bucket, 'acme/calls/')).map((o) => o.key).sort();
      expect(keys).toEqual([...hashes.keys()].map((p) => `acme/${p}`).sort());
      const meta = await metadataOf(e, keys);
      expect(meta.get('acme/calls/2024-03-01/call-000.wav')).toMatchObject({
        email: 'ann@acme.example',
        'date-of-call': '2024-03-01',
        'metadata-source': 'manifest',
      });
      expect(meta.get('acme/calls/2024-03-02/call-001.wav')).toMatchObject({
        email: 'raj@acme.example',
        'date-of-call': '2024-03-02',
        'metadata-source': 'manifest',
      });
      const none = [...meta.values()].filter((m) => m['metadata-source'] === 'none');
      expect(none).toHaveLength(44);
      for (const m of none) {
        expect(m.email).toBeUndefined();
        expect(m['date-of-call']).toBeUndefined();
        expect(m['voice-id']).toBe('enrolled');
      }
      // Vela was asked once per recording with org_id; only the two named calls carry email and date.
      const calls = e.vela!.calls().filter((c) => c.status === 200);
      expect(calls).toHaveLength(46);
      expect(calls.every((c) => c.org_id === 'acme')).toBe(true);
      expect(
        calls
          .filter((c) => c.email !== undefined || c.date_of_call !== undefined)
          .map((c) => [c.email, c.date_of_call])
          .sort(),
      ).toEqual([
        ['ann@acme.example', '2024-03-01'],
        ['raj@acme.example', '2024-03-02'],
      ]);
      // status counts recordings per metadata source; nothing is parked.
      expect((await e.state.info('acme')).bySource).toMatchObject({ manifest: 2, none: 44 });
      expect(await e.state.parked('acme')).toEqual([]);
    },
    120_000,
  );

  it('with requireManifest, a recording is held visibly, then released by its row', async () => {
    const e = await env('contract-require', {
      vela: true,
      tenant: { metadata: { requireManifest: true, manifestWait: '1h' } },
    });
    await writeFileDeep(e.root, 'calls/held.wav', randomBytes(3_000));
    const daemon = await e.start();
    await daemon.poller!.pollNow('acme');
    await daemon.poller!.pollNow('acme');
    await waitFor('held.wav parked', async () => (await e.state.parked('acme')).length === 1);
    expect((await e.state.parked('acme'))[0]).toMatchObject({
      path: 'calls/held.wav',
      reason: 'missing-metadata',
      detail: expect.stringMatching(/requireManifest: held until/),
    });
    expect(await e.store.head('acme/calls/held.wav')).toBeUndefined();
    await writeFileDeep(
      e.root,
      'calls/rows.csv',
      'file,email,date_of_call\nheld.wav,h@acme.example,2024-01-02\n',
    );
    await daemon.poller!.pollNow('acme');
    await daemon.poller!.pollNow('acme');
    await waitFor('held.wav in S3', async () => (await e.store.head('acme/calls/held.wav')) !== undefined);
    expect((await e.store.head('acme/calls/held.wav'))!.metadata).toMatchObject({
      email: 'h@acme.example',
      'metadata-source': 'manifest',
    });
  });
});

describe('manifest first', () => {
  it.each([1, 2, 3])(
    'round %i: 200 recordings and the CSV naming them, one drop, concurrency 16, two replicas: every call has the CSV metadata',
    async (round) => {
      const e = await env(`contract-first-${round}`, {
        vela: true,
        tenant: { maxConnections: 8 },
        config: { worker: { concurrency: 16 } },
      });
      const rows = ['file,email,date_of_call'];
      for (let i = 0; i < 200; i++) {
        const name = `rec-${round}-${i}.wav`;
        await writeFileDeep(e.root, `calls/${i % 4}/${name}`, randomBytes(1_000 + i));
        rows.push(`${name},agent${i % 9}@acme.example,2024-02-${String((i % 28) + 1).padStart(2, '0')}`);
      }
      // One drop; the CSV sorts (and is queued) after the recordings it names.
      await writeFileDeep(e.root, 'zz-records/calls.csv', `${rows.join('\n')}\n`);
      const a = await e.start({ role: 'all' });
      const b = await e.start({ role: 'worker' });
      let enqueued = 0;
      while (enqueued < 201) enqueued += (await pollUntilDone(a, 'acme')).enqueued;
      await waitIdle(a.syncQueue, 90_000);
      const keys = (await listAll(e.s3.client, e.s3.bucket, 'acme/calls/')).map((o) => o.key);
      expect(keys).toHaveLength(200);
      const meta = await metadataOf(e, keys);
      for (const [key, m] of meta) {
        const i = Number(/rec-\d-(\d+)\.wav$/.exec(key)![1]);
        expect(m, key).toMatchObject({
          email: `agent${i % 9}@acme.example`,
          'date-of-call': `2024-02-${String((i % 28) + 1).padStart(2, '0')}`,
          'metadata-source': 'manifest',
        });
      }
      const calls = e.vela!.calls().filter((c) => c.status === 200);
      expect(calls).toHaveLength(200);
      expect(calls.filter((c) => !c.email || !c.date_of_call)).toEqual([]);
      // Both replicas did part of the work, and nothing was updated after the fact.
      for (const key of keys) expect(objectWrites(e, key.slice('acme/'.length)) <= 1).toBe(true);
      expect(e.s3.requests().filter((r) => r.copySource)).toEqual([]);
      expect([a, b].every((d: Daemon) => d.worker)).toBe(true);
    },
    180_000,
  );

  it('a call record dropped after its recordings were synced updates their metadata in place, no new upload', async () => {
    const e = await env('contract-late', { vela: true, tenant: { metadata: {} } });
    const bodies = new Map<string, string>();
    for (const name of ['late-1.wav', 'late-2.wav', 'other.wav']) {
      bodies.set(name, (await writeFileDeep(e.root, `calls/${name}`, randomBytes(4_000))).sha256);
    }
    const daemon = await e.start();
    await daemon.poller!.pollNow('acme');
    await daemon.poller!.pollNow('acme');
    await waitIdle(daemon.syncQueue);
    expect((await e.store.head('acme/calls/late-1.wav'))!.metadata['metadata-source']).toBe('none');
    const writesBefore = e.s3.requests().length;

    await writeFileDeep(
      e.root,
      'records/late.csv',
      'file,email,date_of_call\nlate-1.wav,l1@acme.example,2024-05-01\ncalls/late-2.wav,l2@acme.example,2024-05-02\nmissing.wav,x@acme.example,2024-05-03\n',
    );
    await daemon.poller!.pollNow('acme');
    await daemon.poller!.pollNow('acme');
    await waitIdle(daemon.syncQueue);

    const after = e.s3.requests().slice(writesBefore);
    // The recordings were not uploaded again: one copy onto itself each, with replaced metadata.
    expect(after.filter((r) => r.method === 'PUT' && !r.copySource && /\.wav/.test(r.path))).toEqual([]);
    expect(after.filter((r) => r.copySource).length).toBe(2);
    for (const [name, email, date] of [
      ['late-1.wav', 'l1@acme.example', '2024-05-01'],
      ['late-2.wav', 'l2@acme.example', '2024-05-02'],
    ] as const) {
      const head = (await e.store.head(`acme/calls/${name}`))!;
      expect(head.metadata).toMatchObject({
        email,
        'date-of-call': date,
        'metadata-source': 'manifest',
        'source-path': `calls/${name}`,
        org: 'acme',
      });
      const body = await e.store.get(`acme/calls/${name}`);
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      expect(sha256(Buffer.concat(chunks))).toBe(bodies.get(name));
    }
    expect((await e.store.head('acme/calls/other.wav'))!.metadata['metadata-source']).toBe('none');
    // The validation report names the rows that matched synced recordings.
    const report = JSON.parse(await streamText(await e.store.get('acme/records/late.csv.errors.json'))) as {
      matchedSynced: { line: number; path: string; updated: boolean }[];
    };
    expect(report.matchedSynced.map((m) => [m.line, m.path, m.updated])).toEqual([
      [2, 'calls/late-1.wav', true],
      [3, 'calls/late-2.wav', true],
    ]);
    expect((await e.state.info('acme')).bySource).toMatchObject({ manifest: 2, none: 1 });
    expect(e.logs.text()).toMatch(/call metadata updated in place/);
    expect(await daemon.metrics.render()).toMatch(/ftpsync_metadata_updates_total\{org="acme"\} 2/);
  });
});

/** One poll of the tenant, waiting out a poll the scheduler started meanwhile (`skipped`). */
async function pollUntilDone(d: Daemon, org: string) {
  for (;;) {
    const out = await d.poller!.pollNow(org);
    if (out.kind === 'done') return out;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function streamText(s: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
