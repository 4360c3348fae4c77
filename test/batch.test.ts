/**
 * Zip batches against real servers (s3rver behind the fault proxy, redis-server, the Vela stand-in)
 * with archives made by real tools: Info-ZIP `zip`, Python's `zipfile` (seekable, and streaming to a
 * pipe, which writes data descriptors), `7z`, `zip -fz` (zip64), a macOS-style `__MACOSX/` archive,
 * and a set of bad archives, each with the outcome and reason its report must give.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRedisBatchStore } from '../src/adapters/redis-batches.js';
import { makeRedis, type RedisClient } from '../src/adapters/redis-client.js';
import { makeRedisState } from '../src/adapters/redis-state.js';
import { makeS3Client, makeS3Store } from '../src/adapters/s3.js';
import { makeVelaAllocationCheck } from '../src/adapters/vela.js';
import { parseConfig } from '../src/config.js';
import { makeLogger } from '../src/log.js';
import type { BatchStore, EntryRecord } from '../src/ports/batches.js';
import type { ObjectStore } from '../src/ports/object-store.js';
import type { TenantDirectory } from '../src/ports/tenants.js';
import { batchId } from '../src/queue/batch-jobs.js';
import { startVelaStandin, type VelaStandin } from '../src/standin/vela-standin.js';
import { DEFAULT_BATCH_LIMITS } from '../src/sync/batch/entries.js';
import { type BatchDeps, type BatchRun, inLanes, reportKey, runBatch } from '../src/sync/batch/expand.js';
import { EntryBuffers } from '../src/sync/batch/upload-entry.js';
import { makeCallCheck, makeManifestIndexer } from '../src/sync/calls.js';
import { objectKey } from '../src/sync/key.js';
import { redisUrl, uniquePrefix } from './support/env.js';
import { type TempDir, tempDir, writeFileDeep } from './support/fs.js';
import { getObjectBuffer, type S3TestServer, startS3 } from './support/s3.js';

const log = makeLogger({ level: 'silent' });
const S3RVER = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const TOKEN = 'batch-test-token';

let s3: S3TestServer;
let vela: VelaStandin;
let redis: RedisClient;
let dir: TempDir;
let store: ObjectStore;
let batches: BatchStore;
let deps: BatchDeps;
let template: string;

const sh = (cmd: string, cwd: string) => execFileSync('bash', ['-c', cmd], { cwd, stdio: 'pipe' });

beforeAll(async () => {
  [s3, vela, dir] = await Promise.all([
    startS3(),
    startVelaStandin({
      token: TOKEN,
      allocations: { acme: { status: 'within' }, full: { status: 'exceeded' } },
    }),
    tempDir('batch'),
  ]);
  const prefix = uniquePrefix('batch');
  const config = parseConfig(
    {
      redis: { url: redisUrl(), prefix },
      s3: { bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true },
      vela: { url: vela.url, token: TOKEN },
      tenants: ['acme', 'full'].map((org) => ({ org, ftp: { host: '127.0.0.1', user: 'u', password: 'p' } })),
    },
    {},
  );
  template = config.s3.keyTemplate;
  redis = makeRedis(config.redis);
  const state = makeRedisState(redis, prefix);
  store = makeS3Store(config.s3, makeS3Client(config.s3, { credentials: S3RVER }));
  batches = makeRedisBatchStore(redis, prefix);
  const tenants: TenantDirectory = {
    list: async () => config.tenants,
    get: async (org) => config.tenants.find((t) => t.org === org),
  };
  deps = {
    tenants,
    state,
    store,
    batches,
    keyTemplate: template,
    limits: () => DEFAULT_BATCH_LIMITS,
    callCheck: makeCallCheck({
      state,
      allocation: makeVelaAllocationCheck({ url: vela.url, token: TOKEN, timeoutMs: 5000 }),
      allocationRecheckMs: 60_000,
    }),
    afterUpload: makeManifestIndexer({ state, store, log, release: async () => {} }),
    // Recordings above 64 KiB go up as multipart uploads (completed only after the CRC matched).
    bufferBytes: 64 * 1024,
    log,
  };
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await Promise.allSettled([s3?.stop(), vela?.close(), dir?.cleanup()]);
});

/** A folder of call data: three recordings (random, so no two folders share bytes) and their CSV. */
async function callData(name: string) {
  const root = join(dir.path, name);
  const files: Record<string, Buffer> = {
    'calls/a.wav': randomBytes(300 * 1024),
    'calls/b.wav': randomBytes(20 * 1024),
    'calls/sub/c.wav': Buffer.concat([randomBytes(50 * 1024), Buffer.alloc(200 * 1024, 7)]),
    'calls/calls.csv': Buffer.from(
      `file,email,date_of_call\na.wav,ann@acme.example,2024-03-05\nsub/c.wav,cy@acme.example,2024-03-07\nother-${name}.wav,o@acme.example,2024-01-01\n`,
    ),
  };
  for (const [p, b] of Object.entries(files)) await writeFileDeep(root, p, b);
  return { root, files };
}

/** Puts a local archive into S3 under the tenant's key for `path` and expands it. */
async function importArchive(org: string, file: string, path: string): Promise<BatchRun> {
  const key = objectKey(template, org, path);
  const body = await readFile(file);
  await store.put(key, body, { size: body.length, metadata: { org } });
  const head = await store.head(key);
  return runBatch(deps, { id: batchId(org, key, head?.etag ?? ''), org, key, path, via: 'cli' });
}

const byName = (entries: EntryRecord[]) => Object.fromEntries(entries.map((e) => [e.name, e]));

async function reportOf(run: BatchRun) {
  const json = await getObjectBuffer(s3.directClient, s3.bucket, reportKey(run.record.key));
  return JSON.parse(json.toString()) as { batch: typeof run.record; entries: EntryRecord[] };
}

async function expectAllArrived(org: string, path: string, files: Record<string, Buffer>) {
  for (const [name, body] of Object.entries(files)) {
    const key = objectKey(template, org, `${path}/${name}`);
    const got = await getObjectBuffer(s3.directClient, s3.bucket, key);
    expect(got.equals(body), `${name} byte-identical`).toBe(true);
  }
  const a = await store.head(objectKey(template, org, `${path}/calls/a.wav`));
  expect(a?.metadata).toMatchObject({
    email: 'ann@acme.example',
    'date-of-call': '2024-03-05',
    'metadata-source': 'manifest',
  });
  const c = await store.head(objectKey(template, org, `${path}/calls/sub/c.wav`));
  expect(c?.metadata).toMatchObject({ email: 'cy@acme.example', 'metadata-source': 'manifest' });
}

const PY_WRITE = `
import sys, os, zipfile
out, root, mode = sys.argv[1], sys.argv[2], sys.argv[3]
target = sys.stdout.buffer if out == '-' else out
with zipfile.ZipFile(target, 'w', zipfile.ZIP_DEFLATED) as z:
    for d, _, fs in os.walk(root):
        for f in sorted(fs):
            p = os.path.join(d, f)
            z.write(p, os.path.relpath(p, root), compress_type=zipfile.ZIP_STORED if mode == 'stored' else zipfile.ZIP_DEFLATED)
`;

describe('archives made by real tools: every entry arrives byte-identical, with the archive’s call records', () => {
  const tools: [string, (root: string, out: string) => void][] = [
    ['Info-ZIP zip', (root, out) => sh(`zip -qr ${out} calls`, root)],
    ['Python zipfile', (root, out) => sh(`python3 -c "$PY" ${out} . deflated`, root)],
    // Writing to a pipe (not seekable): sizes and CRCs go in data descriptors after each entry.
    [
      'a streaming writer (data descriptors)',
      (root, out) => sh(`python3 -c "$PY" - . stored | cat > ${out}`, root),
    ],
    ['7z', (root, out) => sh(`7z a -tzip -bd -bso0 ${out} calls`, root)],
    ['zip -fz (zip64)', (root, out) => sh(`zip -qr -fz ${out} calls`, root)],
  ];
  for (const [tool, make] of tools) {
    it(tool, async () => {
      const name = tool.replace(/\W+/g, '-');
      const { root, files } = await callData(name);
      const out = join(dir.path, `${name}.zip`);
      process.env.PY = PY_WRITE;
      make(root, out);
      if (tool.includes('streaming')) {
        // The proof that this archive does use data descriptors (general purpose bit 3).
        expect((await readFile(out)).readUInt16LE(6) & 8).toBe(8);
      }
      if (tool.includes('zip64'))
        expect((await readFile(out)).includes(Buffer.from([0x50, 0x4b, 0x06, 0x06]))).toBe(true);
      const run = await importArchive('acme', out, `drop/${name}.zip`);
      expect(run.record).toMatchObject({ state: 'done', counts: { synced: 4, rejected: 0, parked: 0 } });
      await expectAllArrived('acme', `drop/${name}.zip`, files);
      // The central directory is read once: one GET for the tail, then a header and a data GET per entry.
      expect(run.record.rangeGets).toBeLessThanOrEqual(2 + 2 * run.record.entries);
      expect((await reportOf(run)).batch.counts.synced).toBe(4);
    });
  }

  it('a macOS archive: __MACOSX/, ._ files and .DS_Store ignored, the rest synced', async () => {
    const { root, files } = await callData('mac');
    await writeFileDeep(root, '__MACOSX/calls/._a.wav', randomBytes(100));
    await writeFileDeep(root, 'calls/._b.wav', randomBytes(100));
    await writeFileDeep(root, 'calls/.DS_Store', randomBytes(100));
    const out = join(dir.path, 'mac.zip');
    sh(`zip -qr ${out} calls __MACOSX`, root);
    const run = await importArchive('acme', out, 'drop/mac.zip');
    expect(run.record.counts).toMatchObject({ synced: 4, rejected: 0 });
    const entries = byName(await batches.entries(run.record.id));
    for (const n of ['__MACOSX/calls/._a.wav', 'calls/._b.wav', 'calls/.DS_Store'])
      expect(entries[n]?.outcome).toBe('ignored');
    await expectAllArrived('acme', 'drop/mac.zip', files);
  });
});

/** Writes archives with Python's zipfile; `spec` is Python code run with `z` open for writing. */
const pyZip = (out: string, spec: string) =>
  sh(
    `python3 - <<'PY'\nimport zipfile, os\nz = zipfile.ZipFile(${JSON.stringify(out)}, 'w', zipfile.ZIP_DEFLATED)\n${spec}\nz.close()\nPY`,
    dir.path,
  );

describe('bad archives: each entry or batch with its outcome and reason in the report', () => {
  it('one archive of bad entries: each rejected with its reason, the good ones synced, no partial object', async () => {
    const good = randomBytes(100 * 1024);
    await writeFile(join(dir.path, 'good.wav'), good);
    await symlink('good.wav', join(dir.path, 'link.wav'));
    sh('zip -q inner.zip good.wav', dir.path);
    sh('zip -q -P secret enc.zip good.wav', dir.path);
    sh('zip -q -y links.zip link.wav', dir.path);
    const out = join(dir.path, 'bad-entries.zip');
    pyZip(
      out,
      `
good = open('good.wav', 'rb').read()
z.writestr('ok/good.wav', good)
z.writestr('ok/notes.txt', b'hello')
z.writestr('../evil.wav', b'x' * 10)
z.writestr('/abs.wav', b'x' * 11)
z.writestr('C:/drive.wav', b'x' * 12)
z.writestr('dir\\\\back.wav', b'x' * 13)
z.writestr(zipfile.ZipInfo('bomb.wav'), b'\\0' * (20 * 1024 * 1024), compress_type=zipfile.ZIP_DEFLATED)
z.writestr('Dup.wav', os.urandom(100))
z.writestr('dup.wav', os.urandom(100))
z.writestr('bz.wav', os.urandom(1000), compress_type=zipfile.ZIP_BZIP2)
z.writestr('nested/inner.zip', open('inner.zip', 'rb').read(), compress_type=zipfile.ZIP_STORED)
z.writestr('crc.wav', os.urandom(200 * 1024), compress_type=zipfile.ZIP_STORED)
z.writestr('crc-small.csv', b'file,email,date\\n' + os.urandom(20).hex().encode(), compress_type=zipfile.ZIP_STORED)
# Entries copied raw from archives of other tools: an encrypted one (zip -P) and a symlink (zip -y).
for src in ('enc.zip', 'links.zip'):
    with zipfile.ZipFile(src) as s:
        info = s.infolist()[0]
        raw = open(src, 'rb').read()
        start = info.header_offset + 30 + len(info.filename.encode()) + int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], 'little')
        info.filename = ('encrypted.wav' if src == 'enc.zip' else 'symlink.wav')
        info.orig_filename = info.filename
        z.fp.seek(z.start_dir)
        info.header_offset = z.fp.tell()
        z.fp.write(info.FileHeader())
        z.fp.write(raw[start:start + info.compress_size])
        z.filelist.append(info); z.NameToInfo[info.filename] = info
        z.start_dir = z.fp.tell()
`,
    );
    // Flip one byte in the data of each stored "crc" entry: its CRC-32 no longer matches.
    const bytes = await readFile(out);
    for (const name of ['crc.wav', 'crc-small.csv']) {
      const at = bytes.indexOf(Buffer.from(name)) + name.length + 5; // the local header's name, then the data
      bytes[at] = (bytes[at] as number) ^ 0xff;
    }
    await writeFile(out, bytes);

    const run = await importArchive('acme', out, 'drop/bad-entries.zip');
    const report = await reportOf(run);
    const e = byName(report.entries);
    const expected: Record<string, [string, string?, RegExp?]> = {
      'ok/good.wav': ['synced'],
      'ok/notes.txt': ['ignored', undefined, /not call data/],
      '../evil.wav': ['rejected', 'unsafe-name', /\.\./],
      '/abs.wav': ['rejected', 'unsafe-name', /absolute path/],
      'C:/drive.wav': ['rejected', 'unsafe-name', /drive letter/],
      'dir\\back.wav': ['rejected', 'unsafe-name', /backslash/],
      'bomb.wav': ['rejected', 'zip-bomb', /ratio above 100:1/],
      'Dup.wav': ['rejected', 'duplicate-name', /same name/],
      'dup.wav': ['rejected', 'duplicate-name', /same name/],
      'bz.wav': ['rejected', 'unsupported-method', /bzip2/],
      'nested/inner.zip': ['rejected', 'nested-archive', /not expanded/],
      'crc.wav': ['rejected', 'corrupt', /CRC-32 mismatch/],
      'crc-small.csv': ['rejected', 'corrupt', /CRC-32 mismatch/],
      'encrypted.wav': ['rejected', 'encrypted', /encrypted/],
      'symlink.wav': ['rejected', 'symlink', /symbolic link/],
    };
    for (const [name, [outcome, reason, detail]] of Object.entries(expected)) {
      expect(e[name], name).toMatchObject({ outcome, ...(reason && { reason }) });
      if (detail) expect(e[name]?.detail, name).toMatch(detail);
    }
    expect(report.entries).toHaveLength(Object.keys(expected).length);
    expect(report.batch).toMatchObject({ state: 'done', counts: { synced: 1, ignored: 1, rejected: 13 } });
    const got = await getObjectBuffer(
      s3.directClient,
      s3.bucket,
      objectKey(template, 'acme', 'drop/bad-entries.zip/ok/good.wav'),
    );
    expect(got.equals(good)).toBe(true);
    // Only the good entry became an object: no partial object of the corrupt ones (a multipart
    // upload for crc.wav, one buffered PutObject for crc-small.csv), nothing for the others.
    const keys: string[] = [];
    const under = `${objectKey(template, 'acme', 'drop/bad-entries.zip')}/`;
    for await (const o of store.list(under)) keys.push(o.key);
    expect(keys).toEqual([objectKey(template, 'acme', 'drop/bad-entries.zip/ok/good.wav')]);
  });

  it('stored entries read in one GET: a local extra field longer than guessed, a broken local header, a CRC mismatch', async () => {
    const out = join(dir.path, 'stored.zip');
    await writeFile(join(dir.path, 'long.bin'), randomBytes(50 * 1024));
    await writeFile(join(dir.path, 'fine.bin'), randomBytes(30 * 1024));
    pyZip(
      out,
      `
import struct
def stored(name, data, extra=b''):
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_STORED
    info.extra = extra
    z.writestr(info, data)
stored('long-extra.wav', open('long.bin', 'rb').read(), struct.pack('<HH', 0xcafe, 3000) + os.urandom(3000))
stored('no-header.wav', os.urandom(40 * 1024))
stored('flipped.wav', os.urandom(40 * 1024))
stored('fine.wav', open('fine.bin', 'rb').read())
`,
    );
    const bytes = await readFile(out);
    // no-header.wav: its local header's signature zeroed; flipped.wav: one byte of its data flipped.
    const lh = bytes.indexOf(Buffer.from('no-header.wav')) - 30;
    bytes.writeUInt32LE(0, lh);
    const fl = bytes.indexOf(Buffer.from('flipped.wav')) + 'flipped.wav'.length + 100;
    bytes[fl] = (bytes[fl] as number) ^ 0xff;
    await writeFile(out, bytes);
    const run = await importArchive('acme', out, 'drop/stored.zip');
    const e = byName(await batches.entries(run.record.id));
    expect(e['long-extra.wav']).toMatchObject({ outcome: 'synced' });
    expect(e['fine.wav']).toMatchObject({ outcome: 'synced' });
    expect(e['no-header.wav']).toMatchObject({ outcome: 'rejected', reason: 'corrupt' });
    expect(e['no-header.wav']?.detail).toMatch(/no local file header/);
    expect(e['flipped.wav']).toMatchObject({ outcome: 'rejected', reason: 'corrupt' });
    expect(e['flipped.wav']?.detail).toMatch(/CRC-32 mismatch/);
    for (const [name, file] of [
      ['long-extra.wav', 'long.bin'],
      ['fine.wav', 'fine.bin'],
    ]) {
      const got = await getObjectBuffer(
        s3.directClient,
        s3.bucket,
        objectKey(template, 'acme', `drop/stored.zip/${name}`),
      );
      expect(got.equals(await readFile(join(dir.path, file as string))), name).toBe(true);
    }
    for (const name of ['no-header.wav', 'flipped.wav']) {
      expect(await store.head(objectKey(template, 'acme', `drop/stored.zip/${name}`)), name).toBeUndefined();
    }
  });

  const whole: [string, (out: string) => unknown, RegExp][] = [
    [
      'a truncated archive',
      async (out) => {
        sh(`zip -q ${out} good.wav`, dir.path);
        const b = await readFile(out);
        await writeFile(out, b.subarray(0, b.length - 40));
      },
      /not a readable zip archive/,
    ],
    [
      'a bad central directory',
      async (out) => {
        sh(`zip -q ${out} good.wav`, dir.path);
        const b = await readFile(out);
        const cd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
        b[cd] = 0; // the central directory record's signature
        await writeFile(out, b);
      },
      /bad central directory/,
    ],
    ['an empty zip', (out) => pyZip(out, ''), /empty archive/],
    ['a non-zip with a .zip name', (out) => writeFile(out, randomBytes(5000)), /not a readable zip archive/],
    [
      '10,001 entries',
      (out) => pyZip(out, "for i in range(10001): z.writestr(f'r/{i}.csv', b'')"),
      /10001 entries, more than the limit of 10000/,
    ],
  ];
  for (const [what, make, reason] of whole) {
    it(`${what}: the batch fails with a clear reason, nothing is expanded`, async () => {
      const name = what.replace(/\W+/g, '-');
      const out = join(dir.path, `${name}.zip`);
      await make(out);
      const run = await importArchive('acme', out, `drop/${name}.zip`);
      expect(run.record.state).toBe('failed');
      expect(run.record.reason).toMatch(reason);
      const report = await reportOf(run);
      expect(report.batch.reason).toMatch(reason);
      expect(report.entries).toEqual([]);
    });
  }
});

/** Requests that write an object (PUT, multipart POSTs) under `part`, reports aside. */
const writes = (part: string) =>
  s3.requests().filter((r) => {
    const path = r.path.split('?')[0] as string;
    return (r.method === 'PUT' || r.method === 'POST') && path.includes(part) && !path.endsWith('.json');
  }).length;

describe('the call pipeline: allocation, exactly once, duplicates', () => {
  it('a tenant over its allocation: its recordings parked (visible), another tenant’s archive all synced', async () => {
    const full = await callData('alloc-full');
    const ok = await callData('alloc-ok');
    sh('zip -qr ../alloc-full.zip calls', full.root);
    sh('zip -qr ../alloc-ok.zip calls', ok.root);
    const [parked, synced] = await Promise.all([
      importArchive('full', join(dir.path, 'alloc-full.zip'), 'in/alloc.zip'),
      importArchive('acme', join(dir.path, 'alloc-ok.zip'), 'in/alloc.zip'),
    ]);
    expect(parked.record).toMatchObject({ state: 'parked', counts: { parked: 3, synced: 1 } });
    expect(parked.parked).toBe(true);
    for (const e of (await batches.entries(parked.record.id)).filter((x) => x.name.endsWith('.wav'))) {
      expect(e).toMatchObject({ outcome: 'parked', reason: 'allocation-exceeded' });
      expect(await store.head(objectKey(template, 'full', `in/alloc.zip/${e.name}`))).toBeUndefined();
    }
    const visible = await deps.state.parked('full');
    expect(visible.map((p) => p.path).sort()).toEqual(
      ['calls/a.wav', 'calls/b.wav', 'calls/sub/c.wav'].map((n) => `in/alloc.zip/${n}`),
    );
    expect(synced.record).toMatchObject({ state: 'done', counts: { synced: 4 } });
    await expectAllArrived('acme', 'in/alloc.zip', ok.files);
  });

  it('the same archive again uploads nothing; its bytes in another archive are reported duplicates', async () => {
    const { root } = await callData('twice');
    sh('zip -qr ../twice.zip calls', root);
    const file = join(dir.path, 'twice.zip');
    const first = await importArchive('acme', file, 'in/twice.zip');
    expect(first.record.counts.synced).toBe(4);
    const puts = () => writes('in/twice.zip');
    const before = puts();
    // Same key, same bytes: the same batch, resumed: every entry already has its outcome.
    const again = await importArchive('acme', file, 'in/twice.zip');
    expect(again.record.id).toBe(first.record.id);
    expect(again.record.counts.synced).toBe(4);
    // The archive itself is put again by this test (as an operator would); no entry is.
    expect(puts() - before).toBe(1);
    // Another archive holding the same files: duplicates, not uploaded.
    const other = await importArchive('acme', file, 'in/copy-of-twice.zip');
    expect(other.record.counts).toMatchObject({ duplicate: 4, synced: 0 });
    const e = byName(await batches.entries(other.record.id));
    expect(e['calls/a.wav']).toMatchObject({
      outcome: 'duplicate',
      key: objectKey(template, 'acme', 'in/twice.zip/calls/a.wav'),
    });
    expect(await store.head(objectKey(template, 'acme', 'in/copy-of-twice.zip/calls/a.wav'))).toBeUndefined();
  });

  it('a run that died after an upload, before its outcome: resumed without a second write', async () => {
    const { root } = await callData('resume');
    sh('zip -qr ../resume.zip calls', root);
    const run = await importArchive('acme', join(dir.path, 'resume.zip'), 'in/resume.zip');
    // As if the process died right after the uploads: outcomes and sync state gone, objects in S3.
    await redis.del(...(await redis.keys(`*batch:${run.record.id}`)));
    for (const n of ['calls/a.wav', 'calls/b.wav', 'calls/sub/c.wav', 'calls/calls.csv'])
      await deps.state.forgetSynced('acme', [`in/resume.zip/${n}`]);
    const before = writes('in/resume.zip/');
    const again = await runBatch(deps, { ...run.record, via: 'cli' });
    expect(again.record.counts.synced).toBe(4);
    expect(writes('in/resume.zip/')).toBe(before);
  });
});

describe('several entries at once (worker.batchEntries)', () => {
  it('4 at once: call records still first, the same bytes twice still one upload and a duplicate, each key written once', async () => {
    const { root, files } = await callData('lanes');
    // More recordings, and one whose bytes are a.wav's: it must be reported a duplicate, not put.
    for (let i = 0; i < 12; i++) {
      const body = randomBytes(10_000 + i * 9_000);
      files[`calls/more/m${i}.wav`] = body;
      await writeFileDeep(root, `calls/more/m${i}.wav`, body);
    }
    await writeFileDeep(root, 'calls/more/same-as-a.wav', files['calls/a.wav'] as Buffer);
    // Sorted: a.wav comes before its copy in the central directory.
    sh('find calls -type f | LC_ALL=C sort | zip -q ../lanes.zip -@', root);
    const saved = deps.entryConcurrency;
    deps.entryConcurrency = 4;
    try {
      const run = await importArchive('acme', join(dir.path, 'lanes.zip'), 'in/lanes.zip');
      expect(run.record).toMatchObject({ state: 'done', counts: { synced: 16, duplicate: 1, rejected: 0 } });
      const e = byName(await batches.entries(run.record.id));
      expect(e['calls/more/same-as-a.wav']).toMatchObject({
        outcome: 'duplicate',
        key: objectKey(template, 'acme', 'in/lanes.zip/calls/a.wav'),
      });
      await expectAllArrived('acme', 'in/lanes.zip', files);
      for (const name of Object.keys(files)) {
        expect(writes(`in/lanes.zip/${name}`), name).toBeLessThanOrEqual(
          // a multipart upload is a create, its parts and a complete; a PutObject one write
          (files[name] as Buffer).length > 64 * 1024 ? 10 : 1,
        );
      }
      expect(writes('in/lanes.zip/calls/more/same-as-a.wav')).toBe(0);
    } finally {
      deps.entryConcurrency = saved;
    }
  });

  it('entry buffers: reused across entries of other sizes, 3 at once, every object byte-identical and of its own size', async () => {
    const root = join(dir.path, 'reuse');
    const files: Record<string, Buffer> = {};
    // Sizes that grow and shrink around the 64 KiB granule, so a kept buffer larger than the next
    // entry is handed out for it (a view of the entry's size), and a smaller one is passed over.
    const sizes = [70, 300, 65, 129, 280, 64, 200, 90, 310, 66, 150, 250].map((k) => k * 1024 + 17);
    sizes.forEach((n, i) => {
      files[`calls/r${String(i).padStart(2, '0')}.wav`] = randomBytes(n);
    });
    for (const [p, b] of Object.entries(files)) await writeFileDeep(root, p, b);
    sh('find calls -type f | LC_ALL=C sort | zip -q -0 ../reuse.zip -@', root);
    const saved = { c: deps.entryConcurrency, b: deps.bufferBytes };
    deps.entryConcurrency = 3;
    deps.bufferBytes = 1024 * 1024;
    try {
      const run = await importArchive('acme', join(dir.path, 'reuse.zip'), 'in/reuse.zip');
      expect(run.record).toMatchObject({ state: 'done', counts: { synced: sizes.length, rejected: 0 } });
      for (const [name, body] of Object.entries(files)) {
        const got = await getObjectBuffer(
          s3.directClient,
          s3.bucket,
          objectKey(template, 'acme', `in/reuse.zip/${name}`),
        );
        expect(got.equals(body), `${name} byte-identical`).toBe(true);
      }
    } finally {
      deps.entryConcurrency = saved.c;
      deps.bufferBytes = saved.b;
    }
  });

  it('EntryBuffers: the smallest kept buffer that fits, a view of the size asked, at most `keep` kept', () => {
    const pool = new EntryBuffers(2);
    const a = pool.take(100 * 1024);
    const b = pool.take(3 * 1024 * 1024 + 5);
    expect([a.length, b.length]).toEqual([100 * 1024, 3 * 1024 * 1024 + 5]);
    pool.give(a);
    pool.give(b);
    pool.give(Buffer.alloc(200 * 1024)); // not one of ours: ignored
    expect(pool.kept).toBe(2);
    const c = pool.take(90 * 1024); // fits in a's 128 KiB, not b's 4 MiB
    expect(c.buffer).toBe(a.buffer);
    expect(c.length).toBe(90 * 1024);
    const d = pool.take(3.5 * 1024 * 1024); // b's 4 MiB
    expect(d.buffer).toBe(b.buffer);
    expect(pool.take(200 * 1024).buffer).not.toBe(a.buffer); // none kept: a new one
    pool.give(c);
    pool.give(d);
    pool.give(pool.take(5 * 1024 * 1024)); // three offered, two kept: the smallest (c's) goes
    expect(pool.kept).toBe(2);
    expect(pool.take(100 * 1024).buffer).not.toBe(a.buffer);
    expect(pool.take(1000).length).toBe(1000); // small: not pooled
  });

  it('inLanes: in order, at most `limit` at once, one per lane at a time; a failure stops new work after what runs', async () => {
    const started: number[] = [];
    let running = 0;
    let most = 0;
    const lanes = new Map<string, number>();
    const lane = (i: number) => (i % 5 === 0 ? 'same' : `l${i}`);
    await inLanes(
      Array.from({ length: 20 }, (_, i) => i),
      3,
      lane,
      async (i) => {
        started.push(i);
        running++;
        most = Math.max(most, running);
        lanes.set(lane(i), (lanes.get(lane(i)) ?? 0) + 1);
        expect(lanes.get(lane(i))).toBe(1);
        await new Promise((r) => setTimeout(r, 5 + (i % 3) * 5));
        lanes.set(lane(i), (lanes.get(lane(i)) ?? 0) - 1);
        running--;
      },
    );
    expect(started.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(most).toBe(3);
    const ended: number[] = [];
    await expect(
      inLanes([1, 2, 3, 4, 5, 6], 2, String, async (i) => {
        await new Promise((r) => setTimeout(r, i === 2 ? 30 : 5));
        if (i === 1) throw new Error('boom');
        ended.push(i);
      }),
    ).rejects.toThrow('boom');
    // 2 was running when 1 failed: it ended before the failure was thrown; nothing started after.
    expect(ended).toEqual([2]);
  });
});
