/**
 * Crash safety of a zip batch: `kill -9` of the daemon in the middle of expanding an archive of about
 * 1 GB (320 stored entries of 3 MiB, 1.007 GB, made by Info-ZIP `zip -0`), read from S3 by ranged GETs. Another
 * daemon takes the stalled batch job and resumes it; in the end every entry is in S3 exactly once
 * (one PutObject per key as the fault proxy saw them, none of a multipart upload left open), byte
 * for byte the file that went into the archive, and the report lists each entry once, as synced.
 *
 * `BATCH_CRASH_ENTRIES` (default 320) makes the archive smaller for a quick run.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makeRedisBatchStore } from '../../src/adapters/redis-batches.js';
import { makeS3Store } from '../../src/adapters/s3.js';
import { parseConfig } from '../../src/config.js';
import { makeLogger } from '../../src/log.js';
import { importArchive } from '../../src/ops/batch.js';
import type { BatchRecord } from '../../src/ports/batches.js';
import { makeRoot, type Root } from '../../src/root.js';
import { sha256, type TempDir, tempDir } from '../support/fs.js';
import { getObjectBuffer, listAll } from '../support/s3.js';
import { waitFor } from '../support/wait.js';
import { type FaultEnv, MB, makeFaultEnv, stopGracefully } from './harness.js';

const ENTRIES = Number(process.env.BATCH_CRASH_ENTRIES ?? 320);
const ENTRY_BYTES = 3 * MB;
const ARCHIVE = 'acme/batches/calls-export.zip';
const PREFIX = `${ARCHIVE}/`;

let env: FaultEnv | undefined;
let src: TempDir | undefined;
let root: Root | undefined;
afterEach(async () => {
  await root?.close();
  await env?.stop();
  await src?.cleanup();
  env = undefined;
  src = undefined;
  root = undefined;
});

describe('zip batch crash safety', () => {
  it(`kill -9 of the daemon mid-expansion of ${ENTRIES} × 3 MiB stored entries: resumed; each entry written once, intact`, async () => {
    const t0 = Date.now();
    env = await makeFaultEnv('batch-crash');
    src = await tempDir('batch-crash-src');
    // The entries: random bytes on disk, then one archive of them, stored (not deflated).
    const hashes = new Map<string, string>();
    execFileSync('mkdir', ['-p', join(src.path, 'calls')]);
    for (let i = 0; i < ENTRIES; i++) {
      const name = `calls/rec-${String(i).padStart(4, '0')}.wav`;
      const body = randomBytes(ENTRY_BYTES);
      hashes.set(name, sha256(body));
      await writeFile(join(src.path, name), body);
    }
    const zipFile = join(src.path, 'calls-export.zip');
    execFileSync('zip', ['-0', '-qr', zipFile, 'calls'], { cwd: src.path });
    execFileSync('rm', ['-rf', join(src.path, 'calls')]);

    // The archive lands in S3 (not through the proxy: its writes are the daemon's alone), queued.
    // s3rver takes a while to join a 960 MiB multipart upload's parts: no idle timeout for that.
    const config = parseConfig(env.configDoc({ s3: { idleTimeout: '10m' } }), {});
    root = makeRoot(config, makeLogger({ level: 'error' }), {
      tenantCacheMs: 0,
      store: makeS3Store(config.s3, env.s3.directClient),
    });
    const rec = await importArchive(root, 'acme', zipFile);
    expect(rec.key).toBe(ARCHIVE);
    expect(rec.size).toBeGreaterThan(ENTRIES * ENTRY_BYTES);
    const prepared = Date.now();

    const entryWrites = () =>
      [...env!.writes().entries()].filter(([k]) => k.startsWith(PREFIX) && !k.endsWith('.report.json'));
    const victim = await env.spawn('all', {}, 'victim');
    // Some entries written, not all: kill without warning.
    const until = Date.now() + 120_000;
    while (entryWrites().length < Math.ceil(ENTRIES / 3)) {
      if (Date.now() > until)
        throw new Error(`the expansion did not get going: ${victim.output().slice(-2000)}`);
      await delay(20);
    }
    victim.kill('SIGKILL');
    expect(await victim.waitExit()).toEqual({ code: null, signal: 'SIGKILL' });
    const before = entryWrites().length;
    expect(before).toBeLessThan(ENTRIES);
    const batches = makeRedisBatchStore(env.redis, env.prefix);
    expect((await batches.get(rec.id))?.state).not.toBe('done');
    const killedAt = Date.now();

    const rescuer = await env.spawn('all', {}, 'rescuer');
    const done = (await waitFor(
      'the batch done',
      async () => {
        const b = await batches.get(rec.id);
        return b && ['done', 'failed', 'parked'].includes(b.state) ? b : undefined;
      },
      150_000,
    )) as BatchRecord;
    const recoveredMs = Date.now() - killedAt;
    await stopGracefully([rescuer]);
    expect(done).toMatchObject({ state: 'done', counts: { synced: ENTRIES, rejected: 0, parked: 0 } });

    // Exactly once: one whole-object write per entry at the S3 server, no multipart upload left open.
    const writes = new Map(entryWrites());
    expect(writes.size).toBe(ENTRIES);
    for (const name of hashes.keys()) expect(writes.get(`${PREFIX}${name}`), name).toBe(1);
    expect(env.openUploads(), 'multipart uploads left open').toBe(0);

    // No partial object, nothing else: the objects are exactly the entries, each byte-identical.
    const objects = await listAll(env.s3.directClient, env.s3.bucket, PREFIX);
    expect(objects.map((o) => o.key).sort()).toEqual([...hashes.keys()].map((n) => `${PREFIX}${n}`).sort());
    for (const o of objects) expect(o.size, o.key).toBe(ENTRY_BYTES);
    for (const [name, hash] of hashes) {
      const body = await getObjectBuffer(env.s3.directClient, env.s3.bucket, `${PREFIX}${name}`);
      expect(sha256(body), name).toBe(hash);
    }
    expect((await env.state.allSynced('acme')).size).toBe(ENTRIES);

    // The report lists each entry once, as synced (the directory entry `calls/` is ignored).
    const report = JSON.parse(
      (await getObjectBuffer(env.s3.directClient, env.s3.bucket, `${ARCHIVE}.report.json`)).toString(),
    ) as { batch: BatchRecord; entries: { name: string; outcome: string; key?: string }[] };
    expect(report.batch.state).toBe('done');
    const files = report.entries.filter((e) => e.name !== 'calls/');
    expect(files.map((e) => e.name).sort()).toEqual([...hashes.keys()].sort());
    for (const e of files) expect(e, e.name).toMatchObject({ outcome: 'synced', key: `${PREFIX}${e.name}` });
    console.log(
      `batch crash: ${(rec.size / MB).toFixed(0)} MiB archive; killed after ${before} of ${ENTRIES} entries; ` +
        `resumed and done ${(recoveredMs / 1000).toFixed(1)} s after kill -9; ` +
        `set-up ${((prepared - t0) / 1000).toFixed(1)} s, whole case ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  }, 600_000);
});
