import { randomBytes } from 'node:crypto';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../src/main.js';
import { makeTestEnv, SECRETS, type TestEnv, waitIdle } from './support/daemon.js';
import { sha256, writeFileDeep } from './support/fs.js';
import { getObjectBuffer, listAll } from './support/s3.js';

const MB = 1024 * 1024;

/** 200 files: nested folders, mixed sizes, a zero-byte file, a 40 MB file, spaces and non-ASCII. */
function corpus(): { path: string; size: number; content?: string }[] {
  const csv =
    '\ufefffile,email,date_of_call\r\ncall-10.mp3,"Doe, Jane <jane@acme.example>",2024-03-05\r\ncall-11.wav,jane@acme.example,2024-03-05\r\n';
  const json = JSON.stringify([
    { recording: 'call-12.mp3', email: 'joe@acme.example', date_of_call: '2024-03-06' },
  ]);
  const files: { path: string; size: number; content?: string }[] = [
    { path: 'calls/empty call.wav', size: 0 },
    { path: 'calls/big/forty.wav', size: 40 * MB },
    { path: 'calls/équipe/appel ü 1.mp3', size: 120_000 },
    { path: 'calls/日本/通話.wav', size: 64_000 },
    { path: 'records/2024 03/calls.csv', size: 0, content: csv },
    { path: 'records/calls.json', size: 0, content: json },
  ];
  for (let i = files.length; i < 200; i++) {
    const size = i % 25 === 0 ? 2 * MB + i : 1_000 + ((i * 7919) % 150_000);
    files.push({ path: `calls/agent ${i % 7}/day-${i % 3}/call-${i}.${i % 2 ? 'wav' : 'mp3'}`, size });
  }
  return files;
}

describe('end to end: FTP → BullMQ → S3 with sync state in Redis', () => {
  let env: TestEnv;
  let daemon: Daemon;
  const hashes = new Map<string, string>();

  beforeAll(async () => {
    env = await makeTestEnv('e2e');
    for (const f of corpus()) {
      const w = await writeFileDeep(env.root, f.path, f.content ?? (f.size ? randomBytes(f.size) : ''));
      hashes.set(f.path, w.sha256);
    }
    await writeFileDeep(env.root, 'calls/notes.txt', 'not call data');
    daemon = await env.start();
  }, 120_000);

  afterAll(async () => {
    if (process.env.E2E_LOG) await writeFile(process.env.E2E_LOG, env.logs.text());
    await env?.stop();
  });

  it('uploads every file once, intact, with metadata, after two polls', async () => {
    const first = await daemon.poller!.pollNow('acme');
    expect(first).toMatchObject({ kind: 'done', matched: 200, enqueued: 0 });
    const started = Date.now();
    const second = await daemon.poller!.pollNow('acme');
    expect(second).toMatchObject({ kind: 'done', enqueued: 200 });
    const counts = await waitIdle(daemon.syncQueue, 120_000);
    const seconds = (Date.now() - started) / 1000;
    expect(counts.failed).toBe(0);

    const objects = await listAll(env.s3.client, env.s3.bucket, 'acme/');
    const reports = objects.filter((o) => o.key.endsWith('.errors.json')).map((o) => o.key);
    // The CSV's first row has a bad email: it gets a validation report next to it.
    expect(reports).toEqual(['acme/records/2024 03/calls.csv.errors.json']);
    expect(
      objects
        .map((o) => o.key)
        .filter((k) => !reports.includes(k))
        .sort(),
    ).toEqual([...hashes.keys()].map((p) => `acme/${p}`).sort());
    let bytes = 0;
    for (const [path, hash] of hashes) {
      const body = await getObjectBuffer(env.s3.client, env.s3.bucket, `acme/${path}`);
      expect(sha256(body), path).toBe(hash);
      bytes += body.length;
    }
    const head = (await env.store.head('acme/calls/big/forty.wav'))!;
    expect(head.metadata).toMatchObject({ org: 'acme', 'source-size': String(40 * MB) });
    expect(decodeURIComponent(head.metadata['source-path'] ?? '')).toBe('calls/big/forty.wav');
    const puts = env.s3.requests().filter((r) => r.method === 'PUT' && r.status < 300);
    // One PutObject per small file; the 40 MB file as parts (+ no object written twice).
    expect(puts.filter((r) => !/partNumber=/.test(r.path)).length).toBe(199 + reports.length);
    console.log(
      `e2e: ${hashes.size} files, ${(bytes / MB).toFixed(1)} MB in ${seconds.toFixed(2)} s = ` +
        `${(hashes.size / seconds).toFixed(1)} files/s, ${(bytes / MB / seconds).toFixed(1)} MB/s`,
    );
    const synced = await env.state.allSynced('acme');
    expect(synced.size).toBe(200);
    expect(synced.get('calls/big/forty.wav')).toMatchObject({
      size: 40 * MB,
      key: 'acme/calls/big/forty.wav',
    });
  }, 180_000);

  it('adds no job on a poll when nothing changed', async () => {
    const again = await daemon.poller!.pollNow('acme');
    expect(again).toMatchObject({ kind: 'done', enqueued: 0, unchanged: 200 });
  });

  it('uploads a modified file again as a new version', async () => {
    const path = 'calls/agent 1/day-1/call-1.wav';
    const content = randomBytes(77_777);
    await writeFile(join(env.root, path), content);
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 1 });
    await waitIdle(daemon.syncQueue);
    expect(sha256(await getObjectBuffer(env.s3.client, env.s3.bucket, `acme/${path}`))).toBe(sha256(content));
  });

  it('does not upload a file still growing until it is stable', async () => {
    const path = 'calls/growing.wav';
    await writeFileDeep(env.root, path, randomBytes(10_000));
    await daemon.poller!.pollNow('acme');
    await appendFile(join(env.root, path), randomBytes(10_000));
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 0 });
    expect(await env.store.head(`acme/${path}`)).toBeUndefined();
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: 1 });
    await waitIdle(daemon.syncQueue);
    const body = await getObjectBuffer(env.s3.client, env.s3.bucket, `acme/${path}`);
    expect(body).toEqual(await readFile(join(env.root, path)));
  });

  it('with sync state lost, a re-poll finds the objects in S3 and uploads nothing (invariant 2)', async () => {
    // Call data only: a call record adopted from S3 is indexed again (its rows were lost with the
    // state), which rewrites its validation report next to it.
    const dataPuts = () =>
      env.s3.requests().filter((r) => r.method === 'PUT' && !r.path.split('?')[0]!.endsWith('.errors.json'));
    const putsBefore = dataPuts().length;
    const syncedBefore = (await env.state.allSynced('acme')).size;
    await env.state.clear('acme');
    await daemon.syncQueue.obliterate({ force: true }); // the job-id dedup window is gone too
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ enqueued: syncedBefore });
    const counts = await waitIdle(daemon.syncQueue, 120_000);
    expect(counts.failed).toBe(0);
    expect(dataPuts().length).toBe(putsBefore);
    expect((await env.state.allSynced('acme')).size).toBe(syncedBefore);
    expect(await env.state.findManifestRow('acme', ['call-12.mp3'])).toMatchObject({
      email: 'joe@acme.example',
    });
  });

  it('never logs the FTP password', () => {
    expect(env.logs.text()).not.toContain(SECRETS.ftpPassword);
    expect(env.logs.lines.length).toBeGreaterThan(0);
  });
});
