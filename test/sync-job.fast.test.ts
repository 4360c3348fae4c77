/**
 * `runSyncJob` against the in-memory fakes only (no server, no Redis, no Vela): every `SyncOutcome`,
 * the permanent failures, and the invariants the job owns, in milliseconds. The fakes are proven
 * faithful by the conformance suites (test/conformance/*). The real pool (`makeSessionPool`) and call
 * gate (`makeCallCheck`) run over them: only the ports are faked.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, type TenantConfig } from '../src/config.js';
import { NotFoundError, PermanentError, TlsError, TooManyConnectionsError } from '../src/errors.js';
import { makeLogger } from '../src/log.js';
import type { TenantDirectory } from '../src/ports/tenants.js';
import { makeCallCheck, makeManifestIndexer } from '../src/sync/calls.js';
import { makeCredentialCache } from '../src/sync/credentials.js';
import type { SyncJobContext, SyncJobDeps, SyncOutcome } from '../src/sync/job-types.js';
import { makeSessionPool, type SessionPool } from '../src/sync/pool.js';
import { runSyncJob } from '../src/sync/sync-job.js';
import type { AllocationAnswer, SyncJobData } from '../src/types.js';
import {
  makeMemoryBudget,
  makeMemoryObjectStore,
  makeMemorySource,
  makeMemoryState,
  makeScriptedAllocation,
} from './support/fakes/index.js';

const log = makeLogger({ level: 'silent' });
const WITHIN: AllocationAnswer = { allocation: 'within', voiceId: 'enrolled' };
const MTIME = new Date('2024-03-05T06:07:08Z');

function baseConfig(tenant: Record<string, unknown> = {}) {
  return parseConfig({
    s3: { bucket: 'b' },
    vela: { enabled: false },
    tenants: [{ org: 'acme', ftp: { host: '127.0.0.1', user: 'test', password: 'unused' }, ...tenant }],
  });
}

/** Every outcome (and thrown case) some test produced: the last test checks none is missing. */
const covered = new Set<string>();
const label = (o: SyncOutcome) =>
  o.kind === 'done'
    ? `done:${o.result.outcome}`
    : o.kind === 'no-slot'
      ? `no-slot:${o.retryInMs === undefined ? 'plain' : 'retry'}`
      : o.kind === 'parked'
        ? `parked:${o.record.reason}${o.tenantError ? '+error' : ''}`
        : o.kind;

const pools: SessionPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.closeAll();
});

/** A world of fakes: one tenant `acme` whose source serves a few files. */
function world(
  opts: { tenant?: Record<string, unknown>; multipartThreshold?: number; indexer?: boolean } = {},
) {
  const config = baseConfig(opts.tenant);
  let tenant: TenantConfig | undefined = { ...config.tenants[0]! };
  const tenants: TenantDirectory = {
    list: async () => (tenant ? [tenant] : []),
    get: async (org) => (tenant && org === tenant.org ? tenant : undefined),
  };
  const source = makeMemorySource({ user: 'test', password: 'src-Pa55' });
  let state = makeMemoryState();
  // A store that takes a stream body of any length: invariant 1 must hold by the job's own checks.
  const store = makeMemoryObjectStore({ checkLength: false });
  const budget = makeMemoryBudget();
  const allocation = makeScriptedAllocation({ acme: WITHIN });
  const pool = makeSessionPool({
    budget,
    credentials: makeCredentialCache({ get: async () => ({ user: 'test', password: 'src-Pa55' }) }, 60_000),
    connect: source.connectFor,
    log,
    idleMs: 60_000,
    wantedCheckMs: 60_000,
    handoffWaitMs: 50,
  });
  pools.push(pool);
  const deps = (): SyncJobDeps => ({
    tenants,
    state,
    store,
    pool,
    keyTemplate: config.s3.keyTemplate,
    multipartThreshold: opts.multipartThreshold ?? config.s3.multipartThreshold,
    callCheck: makeCallCheck({ state, allocation, allocationRecheckMs: 60_000 }),
    ...(opts.indexer && {
      afterUpload: makeManifestIndexer({ state, store, release: async () => {}, log }),
    }),
    log,
  });
  let jobs = 0;
  return {
    source,
    store,
    budget,
    allocation,
    get state() {
      return state;
    },
    /** Sync state lost (a Redis without persistence restarted): a fresh, empty store. */
    loseState() {
      state = makeMemoryState();
    },
    setTenant(t: Partial<TenantConfig> | undefined) {
      tenant = t && { ...tenant!, ...t };
    },
    /** A file on the source, and the job a poll would queue for it. */
    file(path: string, content: string | number, mtime = MTIME): SyncJobData {
      source.write(`/${path}`, content, { mtime });
      return { org: 'acme', ...source.version(`/${path}`) };
    },
    async run(job: SyncJobData, ctx: Partial<SyncJobContext> = {}): Promise<SyncOutcome> {
      const attempt = ctx.attempt ?? 0;
      const outcome = await runSyncJob(deps(), job, {
        jobId: `j-${++jobs}`,
        attempt,
        firstRun: attempt === 0,
        queuedAt: Date.now(),
        ...ctx,
      });
      covered.add(label(outcome));
      return outcome;
    },
    async fails(job: SyncJobData, ctx: Partial<SyncJobContext> = {}): Promise<Error> {
      const err = await this.run(job, ctx).then(
        (o) => {
          throw new Error(`expected a failure, got ${JSON.stringify(o)}`);
        },
        (e: Error) => e,
      );
      return err;
    },
  };
}

describe('runSyncJob on fakes: done', () => {
  it('uploads a recording with no metadata known (no row, no pattern): metadata-source none, Vela asked with org alone', async () => {
    const w = world();
    const job = w.file('calls/a.wav', 1_000);
    expect(await w.run(job)).toEqual({
      kind: 'done',
      result: { outcome: 'uploaded', key: 'acme/calls/a.wav', bytes: 1_000 },
    });
    expect(w.store.body('acme/calls/a.wav')?.equals(w.source.read('/calls/a.wav')!)).toBe(true);
    expect((await w.store.head('acme/calls/a.wav'))?.metadata).toEqual({
      org: 'acme',
      'source-path': 'calls/a.wav',
      'source-size': '1000',
      'source-mtime': MTIME.toISOString(),
      'metadata-source': 'none',
      'voice-id': 'enrolled',
    });
    expect(w.allocation.calls).toStrictEqual([{ org: 'acme' }]);
    expect(await w.state.getSynced('acme', 'calls/a.wav')).toMatchObject({
      size: 1_000,
      key: 'acme/calls/a.wav',
    });
    const info = await w.state.info('acme');
    expect([info.files, info.bytes, info.bySource.none]).toEqual([1, 1_000, 1]);
    // The session went back to the pool, its lease kept while idle; nothing else held.
    expect(w.budget.held('acme').length).toBe(1);
  });

  it('sends Vela the metadata that is known: a pattern gives email and date', async () => {
    const w = world({
      tenant: { metadata: { pattern: '^(?<date>\\d{4}-\\d{2}-\\d{2})_(?<email>[^_]+@[^_]+)_' } },
    });
    const job = w.file('calls/2024-03-01_agent@acme.example_1.wav', 10);
    expect(await w.run(job)).toMatchObject({ kind: 'done', result: { outcome: 'uploaded' } });
    expect(w.allocation.calls).toStrictEqual([
      { org: 'acme', email: 'agent@acme.example', dateOfCall: '2024-03-01' },
    ]);
    expect((await w.state.info('acme')).bySource.pattern).toBe(1);
  });

  it('finds a version already synced: already-synced, without a login, a Vela call or an S3 request', async () => {
    const w = world();
    const job = w.file('calls/a.wav', 100);
    await w.run(job);
    const [calls, puts, logins] = [w.allocation.calls.length, w.store.calls.length, w.source.stats.logins];
    expect(await w.run(job)).toEqual({
      kind: 'done',
      result: { outcome: 'already-synced', key: 'acme/calls/a.wav', bytes: 0 },
    });
    expect([w.allocation.calls.length, w.store.calls.length, w.source.stats.logins]).toEqual([
      calls,
      puts,
      logins,
    ]);
    expect((await w.state.info('acme')).files).toBe(1);
  });

  it('invariant 2: sync state lost, the object in S3 for this version is not uploaded again (already-in-s3)', async () => {
    const w = world();
    const job = w.file('calls/a.wav', 100);
    await w.run(job);
    w.loseState();
    const before = w.store.calls.filter((c) => c.startsWith('put ')).length;
    expect(await w.run({ ...job, absent: true }, { attempt: 1, firstRun: false })).toEqual({
      kind: 'done',
      result: { outcome: 'already-in-s3', key: 'acme/calls/a.wav', bytes: 0 },
    });
    expect(w.store.calls.filter((c) => c.startsWith('put ')).length).toBe(before);
    // Sync state rebuilt from the object, counted by the metadata source the object carries.
    expect(await w.state.getSynced('acme', 'calls/a.wav')).toMatchObject({
      size: 100,
      key: 'acme/calls/a.wav',
    });
    expect((await w.state.info('acme')).bySource.none).toBe(1);
    // Another version of the path (the object's source-mtime differs) is uploaded.
    const newer = w.file('calls/a.wav', 100, new Date('2024-03-06T00:00:00Z'));
    expect(await w.run(newer)).toMatchObject({ kind: 'done', result: { outcome: 'uploaded' } });
    expect((await w.store.head('acme/calls/a.wav'))?.metadata['source-mtime']).toBe(newer.mtime);
  });
});

describe('runSyncJob on fakes: no slot, wait, superseded', () => {
  it('no-slot when the tenant’s budget is used up (by another replica): no Vela call, no S3 request', async () => {
    const w = world({ tenant: { maxConnections: 1 } });
    expect(typeof (await w.budget.tryAcquire('acme', 1))).toBe('string');
    const job = w.file('calls/a.wav', 10);
    expect(await w.run(job)).toStrictEqual({ kind: 'no-slot' });
    expect(w.allocation.calls).toEqual([]);
    expect(w.store.calls).toEqual([]);
    expect(w.source.stats.logins).toBe(0);
    expect(await w.budget.wanted(['acme'])).toEqual(new Set(['acme']));
  });

  it('no-slot with retryInMs while logins are paused after 421s', async () => {
    const w = world();
    w.budget.pause('acme', 30_000);
    const outcome = await w.run(w.file('calls/a.wav', 10));
    expect(outcome.kind).toBe('no-slot');
    const retryInMs = (outcome as { retryInMs?: number }).retryInMs!;
    expect(retryInMs).toBeGreaterThan(29_000);
    expect(retryInMs).toBeLessThanOrEqual(30_000);
  });

  it('no-slot with retryInMs when the login itself is answered 421: the budget is lowered and logins paused', async () => {
    const w = world();
    w.source.failNextLogin(new TooManyConnectionsError('421 Too many connections'));
    const outcome = await w.run(w.file('calls/a.wav', 10));
    expect(outcome).toMatchObject({ kind: 'no-slot', retryInMs: expect.any(Number) });
    expect(w.budget.held('acme')).toEqual([]);
    expect(await w.budget.room('acme', 4)).toBeLessThan(0);
    expect(w.allocation.calls).toEqual([]);
  });

  it('manifest first: a recording without a row waits while a call record listed with it is pending, then goes', async () => {
    const w = world({ indexer: true });
    const manifest = w.file('calls/manifest.csv', 'recording,email,date\n');
    const job = w.file('calls/a.wav', 10);
    await w.state.notePendingManifests('acme', [manifest], [manifest], Date.now());
    const outcome = await w.run(job);
    expect(outcome).toMatchObject({ kind: 'wait', detail: expect.stringContaining('1 call record') });
    expect((outcome as { retryInMs: number }).retryInMs).toBeGreaterThan(0);
    // Nothing was spent on it: no login, no Vela call, no S3 request, not parked.
    expect([w.source.stats.logins, w.allocation.calls.length, w.store.calls.length]).toEqual([0, 0, 0]);
    expect(await w.state.parked('acme')).toEqual([]);
    // The call record is indexed (it names the recording): the recording goes, with the row's metadata.
    w.file('calls/manifest.csv', 'recording,email,date\na.wav,agent@acme.example,2024-03-01\n');
    const indexed = { org: 'acme', ...w.source.version('/calls/manifest.csv') };
    await w.state.notePendingManifests('acme', [indexed], [indexed], Date.now());
    expect(await w.run(indexed)).toMatchObject({ kind: 'done', result: { outcome: 'uploaded' } });
    expect(await w.run(job)).toMatchObject({ kind: 'done', result: { outcome: 'uploaded' } });
    expect(w.allocation.calls).toStrictEqual([
      { org: 'acme', email: 'agent@acme.example', dateOfCall: '2024-03-01' },
    ]);
    expect((await w.store.head('acme/calls/a.wav'))?.metadata).toMatchObject({
      email: 'agent@acme.example',
      'date-of-call': '2024-03-01',
      'metadata-source': 'manifest',
    });
  });

  it('a row indexed while a recording was on its way reaches its object, read by the sync-state write itself', async () => {
    const w = world({ indexer: true });
    const job = w.file('calls/b.wav', 10);
    const state = w.state;
    let lookups = 0;
    const find = state.findManifestRow;
    state.findManifestRow = (org, refs) => {
      lookups++;
      return find(org, refs);
    };
    // The call record is indexed after the job's first look (no row then) and before its sync-state write.
    const mark = state.markSynced;
    state.markSynced = async (...args) => {
      const row = { email: 'late@acme.example', dateOfCall: '2024-03-02', line: 2, file: 'b.wav' };
      await state.indexManifest('acme', new Map([['b.wav', { ...row, manifest: 'calls/m.csv' }]]));
      return mark(...args);
    };
    expect(await w.run(job)).toMatchObject({ kind: 'done', result: { outcome: 'uploaded' } });
    expect((await w.store.head('acme/calls/b.wav'))?.metadata).toMatchObject({
      email: 'late@acme.example',
      'date-of-call': '2024-03-02',
      'metadata-source': 'manifest',
    });
    // The after-upload step took the row the write's round trip read: no lookup of its own.
    expect(lookups).toBe(0);
  });

  it('superseded: on a retry the listed version was replaced by a newer one', async () => {
    const w = world();
    const job = w.file('calls/a.wav', 10);
    w.file('calls/a.wav', 20, new Date('2024-03-06T00:00:00Z'));
    const outcome = await w.run(job, { attempt: 1 });
    expect(outcome).toMatchObject({ kind: 'superseded', detail: expect.stringContaining('20 bytes') });
    expect(w.store.keys()).toEqual([]);
    expect(await w.state.getSynced('acme', 'calls/a.wav')).toBeUndefined();
  });
});

describe('runSyncJob on fakes: parked', () => {
  it('allocation exceeded: parked with the minutes left, no object; uploaded and unparked once within', async () => {
    const w = world();
    w.allocation.answer('acme', { allocation: 'exceeded', remainingMinutes: 0, voiceId: 'enrolled' });
    const job = w.file('calls/a.wav', 10);
    const outcome = await w.run(job);
    expect(outcome).toMatchObject({
      kind: 'parked',
      record: {
        path: 'calls/a.wav',
        reason: 'allocation-exceeded',
        detail: expect.stringContaining('0 minutes left'),
      },
      retryInMs: 60_000,
    });
    expect(w.store.keys()).toEqual([]);
    expect(await w.state.getParked('acme', 'calls/a.wav')).toMatchObject({ reason: 'allocation-exceeded' });
    w.allocation.answer('acme', WITHIN);
    expect(await w.run(job, { attempt: 0, firstRun: false })).toMatchObject({
      kind: 'done',
      result: { outcome: 'uploaded' },
    });
    expect(await w.state.parked('acme')).toEqual([]);
  });

  it('a parked file that gets past the gate is not parked any more, even when its transfer then fails', async () => {
    const w = world();
    w.allocation.answer('acme', { allocation: 'exceeded', voiceId: 'enrolled' });
    const job = w.file('calls/a.wav', 10);
    expect(await w.run(job)).toMatchObject({ kind: 'parked' });
    w.allocation.answer('acme', WITHIN);
    w.source.cutNextDownload('/calls/a.wav', 5);
    await w.fails(job, { firstRun: false });
    expect(await w.state.parked('acme')).toEqual([]);
  });

  it('keeps the time a file was first parked for the same reason', async () => {
    const w = world();
    w.allocation.answer('acme', { allocation: 'exceeded', voiceId: 'enrolled' });
    const job = w.file('calls/a.wav', 10);
    const first = (await w.run(job)) as Extract<SyncOutcome, { kind: 'parked' }>;
    await new Promise((r) => setTimeout(r, 3));
    const again = (await w.run(job, { firstRun: false })) as Extract<SyncOutcome, { kind: 'parked' }>;
    expect(again.record.since).toBe(first.record.since);
  });

  it('missing metadata: a tenant that requires a manifest parks a recording without a row', async () => {
    const w = world({ tenant: { metadata: { requireManifest: true } } });
    const outcome = await w.run(w.file('calls/a.wav', 10));
    expect(outcome).toMatchObject({ kind: 'parked', record: { reason: 'missing-metadata' } });
    expect(w.allocation.calls).toEqual([]);
    expect(w.store.keys()).toEqual([]);
    expect(await w.state.getParked('acme', 'calls/a.wav')).toMatchObject({ reason: 'missing-metadata' });
  });

  it('tenant disabled: parked before anything else', async () => {
    const w = world();
    w.setTenant({ enabled: false });
    const outcome = await w.run(w.file('calls/a.wav', 10));
    expect(outcome).toMatchObject({
      kind: 'parked',
      record: { reason: 'tenant-disabled' },
      retryInMs: 15 * 60_000,
    });
    expect([w.source.stats.logins, w.allocation.calls.length, w.store.calls.length]).toEqual([0, 0, 0]);
  });

  it('tenant unhealthy (marked so by a poll): parked with the reason, no login', async () => {
    const w = world();
    await w.state.setHealth('acme', 'unhealthy', '530 Login incorrect', { poll: true });
    const outcome = await w.run(w.file('calls/a.wav', 10));
    expect(outcome).toMatchObject({
      kind: 'parked',
      record: { reason: 'tenant-unhealthy', detail: '530 Login incorrect' },
    });
    expect((outcome as { tenantError?: Error }).tenantError).toBeUndefined();
    expect(w.source.stats.logins).toBe(0);
  });

  it('tenant unhealthy (this job hit it: TLS refused at login): parked with the error, the tenant marked unhealthy', async () => {
    const w = world();
    w.source.failNextLogin(new TlsError('certificate has expired'));
    const outcome = await w.run(w.file('calls/a.wav', 10));
    expect(outcome).toMatchObject({ kind: 'parked', record: { reason: 'tenant-unhealthy' } });
    expect((outcome as { tenantError?: Error }).tenantError).toBeInstanceOf(TlsError);
    expect(await w.state.info('acme')).toMatchObject({
      health: 'unhealthy',
      reason: 'certificate has expired',
    });
    // The lease taken for the login went back.
    expect(w.budget.held('acme')).toEqual([]);
    expect(w.store.keys()).toEqual([]);
  });
});

describe('runSyncJob on fakes: permanent failures', () => {
  it('fails for good when the tenant was removed', async () => {
    const w = world();
    const job = w.file('calls/a.wav', 10);
    w.setTenant(undefined);
    const err = await w.fails(job);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toContain('not configured');
    covered.add('throw:tenant-removed');
  });

  it('fails for good a file above maxFileSize, before any login, Vela call or S3 request', async () => {
    const w = world({ tenant: { maxFileSize: 100 } });
    const err = await w.fails(w.file('calls/big.wav', 101));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toContain('maxFileSize');
    expect([w.source.stats.logins, w.allocation.calls.length, w.store.calls.length]).toEqual([0, 0, 0]);
    covered.add('throw:too-large');
  });

  it('fails for good when, on a retry, the file is no longer on the server', async () => {
    const w = world();
    const job = w.file('calls/a.wav', 10);
    w.source.remove('/calls/a.wav');
    const err = await w.fails(job, { attempt: 2 });
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toContain('no longer on the server');
    expect(w.store.keys()).toEqual([]);
    covered.add('throw:gone-on-retry');
  });

  it('a file gone on the first run fails with NotFoundError from the download (permanent)', async () => {
    const w = world();
    const job = w.file('calls/a.wav', 10);
    w.source.remove('/calls/a.wav');
    const err = await w.fails(job);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(w.store.keys()).toEqual([]);
  });
});

describe('runSyncJob on fakes: invariant 1 (no partial object)', () => {
  it.each([
    ['read into memory, one PUT; the connection reset', 300_000, undefined, false],
    ['read into memory, one PUT; the download resolved short', 300_000, undefined, true],
    ['streamed through the gate; the connection reset', 1_000_000, 64 * 1024, false],
    ['streamed through the gate; the download resolved short', 1_000_000, 64 * 1024, true],
  ])(
    '%s: a download cut mid-way leaves no object and a retryable error; the retry uploads it whole',
    async (_what, size, threshold, quiet) => {
      const w = world({ multipartThreshold: threshold });
      const job = w.file('calls/cut.wav', size);
      w.source.cutNextDownload('/calls/cut.wav', Math.floor(size / 3), { quiet });
      const err = await w.fails(job);
      expect(err).not.toBeInstanceOf(PermanentError);
      expect(w.store.keys()).toEqual([]);
      expect(await w.state.getSynced('acme', 'calls/cut.wav')).toBeUndefined();
      expect((await w.state.info('acme')).files).toBe(0);
      // The session of a failed transfer is not reused: closed, its lease given back.
      expect(w.source.stats.open).toBe(0);
      expect(w.budget.held('acme')).toEqual([]);
      covered.add('throw:cut');

      expect(await w.run(job, { attempt: 1, firstRun: false })).toMatchObject({
        kind: 'done',
        result: { outcome: 'uploaded', bytes: size },
      });
      expect(w.store.body('acme/calls/cut.wav')?.equals(w.source.read('/calls/cut.wav')!)).toBe(true);
    },
  );

  it('an upload that fails leaves no object and the version not synced', async () => {
    const w = world();
    const job = w.file('calls/a.wav', 10);
    w.store.failNextPut(new Error('503 Slow Down'));
    const err = await w.fails(job);
    expect(err.message).toContain('Slow Down');
    expect(err).not.toBeInstanceOf(PermanentError);
    expect(w.store.keys()).toEqual([]);
    expect(await w.state.getSynced('acme', 'calls/a.wav')).toBeUndefined();
  });
});

// Last in the file (tests run in order): every variant of SyncOutcome, and each thrown case, was
// produced by some test above. Run with a name filter, this one is filtered out too.
it('covers every SyncOutcome variant and every thrown case', () => {
  expect([...covered].sort()).toEqual(
    [
      'done:already-in-s3',
      'done:already-synced',
      'done:uploaded',
      'no-slot:plain',
      'no-slot:retry',
      'parked:allocation-exceeded',
      'parked:missing-metadata',
      'parked:tenant-disabled',
      'parked:tenant-unhealthy',
      'parked:tenant-unhealthy+error',
      'superseded',
      'throw:cut',
      'throw:gone-on-retry',
      'throw:too-large',
      'throw:tenant-removed',
      'wait',
    ].sort(),
  );
});
