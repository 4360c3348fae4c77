/**
 * The operator command line, run as the real program (`node --import tsx src/cli.ts …`, a child
 * process) against real Redis, an in-process FTP server and, for resync, an S3 server, the Vela
 * stand-in and a worker running in this process.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { makeRedisState } from '../src/adapters/redis-state.js';
import { makeS3Store } from '../src/adapters/s3.js';
import { buildProgram } from '../src/cli.js';
import { parseConfig } from '../src/config.js';
import { type Daemon, startDaemon } from '../src/main.js';
import type { Status } from '../src/ops/status.js';
import type { TenantSummary, TestReport } from '../src/ops/tenants.js';
import { startVelaStandin, type VelaStandin } from '../src/standin/vela-standin.js';
import { captureLog } from './support/daemon.js';
import { redisUrl, uniquePrefix } from './support/env.js';
import { type TempDir, tempDir, writeFileDeep } from './support/fs.js';
import { type FtpTestServer, startFtpServer } from './support/ftp-server.js';
import { listAll, type S3TestServer, startS3 } from './support/s3.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECRET_KEY = randomBytes(32).toString('hex');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Every output of every run, to check that no password was ever printed. */
const allOutput: string[] = [];

/** Runs the program as an operator would, with a clean environment of its own. */
function cli(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      FTPSYNC_SECRET_KEY: SECRET_KEY,
      NO_COLOR: '1',
      ...opts.env,
    };
    delete env.FTPSYNC_CONFIG;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    // A command that leaves Redis open never exits: that is a failure, not a hang of the suite.
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      allOutput.push(stdout, stderr);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

async function writeConfig(dir: string, doc: Record<string, unknown>): Promise<string> {
  const file = join(dir, `config-${randomBytes(3).toString('hex')}.yaml`);
  await writeFile(file, stringify(doc));
  return file;
}

/** Every value stored under a prefix, whatever the key type. */
async function dumpRedis(redis: Redis, prefix: string): Promise<{ keys: string[]; text: string }> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const parts: string[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    if (type === 'string') parts.push((await redis.get(key)) ?? '');
    else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
    else if (type === 'list') parts.push(...(await redis.lrange(key, 0, -1)));
    else if (type === 'set') parts.push(...(await redis.smembers(key)));
    else if (type === 'zset') parts.push(...(await redis.zrange(key, '0', '-1')));
    else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
  }
  return { keys, text: parts.join('\n') };
}

describe('ftp-sync program', () => {
  const leaves = (cmd: Command, path: string[] = []): [string, Command][] =>
    cmd.commands.length
      ? cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]))
      : [[path.join(' '), cmd]];

  it('can be imported without running, and every command has examples in its help', () => {
    const commands = leaves(buildProgram());
    expect(commands.map(([name]) => name).sort()).toEqual([
      'batch import',
      'batch status',
      'config check',
      'resync',
      'start',
      'status',
      'tenants add',
      'tenants list',
      'tenants remove',
      'tenants test',
      'tenants update',
      'tokens create',
      'tokens list',
      'tokens revoke',
    ]);
    for (const [name, cmd] of commands) {
      let help = '';
      cmd.configureOutput({ writeOut: (s) => (help += s) });
      cmd.outputHelp();
      expect(help, name).toMatch(/\nExamples:\n .*ftp-sync /);
    }
  });
});

describe('ftp-sync config check', () => {
  let dir: TempDir;
  beforeAll(async () => {
    dir = await tempDir('cli-config');
  });
  afterAll(async () => {
    await dir.cleanup();
  });

  const base = (port: unknown) => ({
    redis: { url: redisUrl(), prefix: uniquePrefix('cli-config') },
    s3: { bucket: 'calls' },
    vela: { enabled: false },
    tenants: [{ org: 'acme', ftp: { host: '127.0.0.1', port, secure: false, user: 'u', password: 'p' } }],
  });

  it('prints a summary of a valid file and exits 0', async () => {
    const file = await writeConfig(dir.path, base(2121));
    const r = await cli(['config', 'check', '-c', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('configuration OK: 1 tenant(s), bucket calls, vela off');
    expect(r.stdout).toMatch(/acme: 127\.0\.0\.1:2121 plain FTP/);
  });

  it("shows a tenant's maxBandwidth in the summary", async () => {
    const config = base(2121);
    const file = await writeConfig(dir.path, {
      ...config,
      tenants: [{ ...config.tenants[0]!, maxBandwidth: '10MiB/s' }],
    });
    const r = await cli(['config', 'check', '-c', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/acme: .*, at most 10(\.0)? MiB\/s/);
  });

  it('exits 2 and names the field of an invalid file', async () => {
    const file = await writeConfig(dir.path, base(99_999));
    const r = await cli(['config', 'check', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^ftp-sync: configuration error: tenants\[0\]\.ftp\.port: expected a number from 1 to 65535/,
    );
  });

  it('reports a usage error in one line with a hint', async () => {
    const r = await cli(['resync']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      "ftp-sync: required option '--org <id>' not specified (see: ftp-sync resync --help)",
    ]);
  });

  it('shows examples in --help of a command', async () => {
    const r = await cli(['tenants', 'add', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('--password-stdin');
  });
});

describe('ftp-sync tenants', () => {
  const password = `pw-${randomBytes(8).toString('hex')}`;
  let dir: TempDir;
  let ftp: FtpTestServer;
  let redis: Redis;
  let prefix: string;
  let config: string;

  beforeAll(async () => {
    dir = await tempDir('cli-tenants');
    for (const p of ['calls/a.wav', 'calls/b.mp3', 'calls/day 2/c.wav', 'calls/notes.txt']) {
      await writeFileDeep(join(dir.path, 'root'), p, randomBytes(1000));
    }
    ftp = await startFtpServer({ root: join(dir.path, 'root'), users: { up: password } });
    prefix = uniquePrefix('cli-tenants');
    redis = new Redis(redisUrl());
    config = await writeConfig(dir.path, {
      redis: { url: redisUrl(), prefix },
      s3: { bucket: 'calls' },
      vela: { enabled: false },
    });
  });

  afterAll(async () => {
    const keys = (await dumpRedis(redis, prefix)).keys;
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await ftp?.stop();
    await dir?.cleanup();
  });

  const add = (input: string, env?: Record<string, string>) =>
    cli(
      [
        'tenants',
        'add',
        '-c',
        config,
        '--org',
        'beta',
        '--host',
        '127.0.0.1',
        '--port',
        String(ftp.port),
        '--secure',
        'false',
        '--user',
        'up',
        '--password-stdin',
        '--dir',
        '/calls',
        '--max-connections',
        '1',
      ],
      { input, env },
    );

  it('takes a password only from stdin', async () => {
    const r = await cli([
      'tenants',
      'add',
      '-c',
      config,
      '--org',
      'beta',
      '--host',
      'h',
      '--user',
      'u',
      '--dir',
      '/',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'ftp-sync: tenants add needs --password-stdin: a password is read from stdin, never from the command line (see: ftp-sync tenants add --help)\n',
    );
  });

  it('refuses an empty password', async () => {
    const r = await add('\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ftp-sync: the password read from stdin is empty/);
  });

  it('refuses to onboard without FTPSYNC_SECRET_KEY (exit 2)', async () => {
    const r = await add(`${password}\n`, { FTPSYNC_SECRET_KEY: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('FTPSYNC_SECRET_KEY is not set');
  });

  it('adds a tenant with the password read from stdin (trailing newline stripped)', async () => {
    const r = await add(`${password}\n`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^added tenant beta: 127\.0\.0\.1:\d+ plain FTP/);
  });

  it('lists it without the password, as a table and as JSON', async () => {
    const table = await cli(['tenants', 'list', '-c', config]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ORG\s+ORIGIN\s+HOST\s+SECURE\s+USER\s+DIRS/);
    expect(lines[1]).toMatch(
      new RegExp(`^beta\\s+onboarded\\s+127\\.0\\.0\\.1:${ftp.port}\\s+no\\s+up\\s+/calls\\s`),
    );

    const asJson = await cli(['tenants', 'list', '-c', config, '--json']);
    expect(asJson.code).toBe(0);
    const list = JSON.parse(asJson.stdout) as TenantSummary[];
    expect(list).toEqual([
      expect.objectContaining({
        org: 'beta',
        origin: 'onboarded',
        host: '127.0.0.1',
        port: ftp.port,
        secure: false,
        user: 'up',
        dirs: ['/calls'],
        enabled: true,
        maxConnections: 1,
      }),
    ]);
    expect(asJson.stdout).not.toContain(password);
    expect(table.stdout).not.toContain(password);
  });

  it('stores the password only encrypted in Redis', async () => {
    const { keys, text } = await dumpRedis(redis, prefix);
    expect(keys).toContain(`${prefix}:tenant-secrets`);
    expect(text).not.toContain(password);
    expect(text).not.toContain(Buffer.from(password).toString('base64'));
  });

  it('tests the tenant: logs in, lists, counts matching files', async () => {
    const r = await cli(['tenants', 'test', '-c', config, '--org', 'beta']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^beta: ok in .*: logged in to 127\.0\.0\.1:\d+ and listed \/calls/);
    expect(r.stdout).toContain('TLS: none (plain FTP');
    expect(r.stdout).toContain('matched: 3 file(s)');
    expect(r.stdout).toContain('calls/day 2/c.wav');

    const j = await cli(['tenants', 'test', '-c', config, '--org', 'beta', '--json']);
    expect(j.code).toBe(0);
    const report = JSON.parse(j.stdout) as TestReport;
    expect(report).toMatchObject({ org: 'beta', ok: true, listingFormat: 'LIST', matched: 3 });
    expect(report.sample?.map((s) => s.path).sort()).toEqual([
      'calls/a.wav',
      'calls/b.mp3',
      'calls/day 2/c.wav',
    ]);
  });

  it('exits 1 with failure "login" when the server refuses the password', async () => {
    ftp.setPassword('up', 'rotated-on-the-server');
    try {
      const r = await cli(['tenants', 'test', '-c', config, '--org', 'beta']);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^beta: FAILED \(login\) after .*: login to 127\.0\.0\.1 refused \(530\)/);

      const j = await cli(['tenants', 'test', '-c', config, '--org', 'beta', '--json']);
      expect(j.code).toBe(1);
      expect(JSON.parse(j.stdout)).toMatchObject({ org: 'beta', ok: false, failure: 'login' });
    } finally {
      ftp.setPassword('up', password);
    }
  });

  it('names an unknown tenant in one line with a hint', async () => {
    const r = await cli(['tenants', 'test', '-c', config, '--org', 'nobody']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ftp-sync: no tenant "nobody" (see: ftp-sync tenants list)\n');
  });

  const tenantJson = async (org: string) =>
    (JSON.parse((await cli(['tenants', 'list', '-c', config, '--json'])).stdout) as TenantSummary[]).find(
      (t) => t.org === org,
    );

  it('add takes every per-tenant option and --settings-json; list --json shows them', async () => {
    const r = await cli(
      [
        'tenants',
        'add',
        '-c',
        config,
        '--org',
        'gamma',
        '--host',
        '127.0.0.1',
        '--port',
        String(ftp.port),
        '--secure',
        'false',
        '--user',
        'up',
        '--password-stdin',
        '--dir',
        '/calls',
        '--default-email',
        'calls@gamma.example',
        '--pattern',
        '^(?<email>[^_]+)_',
        '--date-format',
        'DD/MM/YYYY',
        '--date-from-mtime',
        '--require-manifest',
        '--manifest-wait',
        '10m',
        '--after-sync',
        'move',
        '--move-to',
        '/archive/{path}',
        '--poll-interval',
        '2m',
        '--min-file-age',
        '30s',
        '--max-connections',
        '3',
        '--max-file-size',
        '1MiB',
        '--disabled',
        '--settings-json',
        '{"metadata":{"columns":{"email":["agent_mail"]},"defaultEmail":"ignored@gamma.example"}}',
      ],
      { input: password },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^added tenant gamma: .*after sync move to \/archive\/\{path\}, disabled/);
    expect(await tenantJson('gamma')).toMatchObject({
      origin: 'onboarded',
      enabled: false,
      dirs: ['/calls'],
      pollInterval: 120_000,
      minFileAge: 30_000,
      maxConnections: 3,
      maxFileSize: 1024 * 1024,
      afterSync: 'move',
      moveTo: '/archive/{path}',
      metadata: {
        defaultEmail: 'calls@gamma.example',
        pattern: '^(?<email>[^_]+)_',
        dateFormat: 'DD/MM/YYYY',
        dateFromMtime: true,
        requireManifest: true,
        manifestWait: 600_000,
        columns: expect.objectContaining({ email: ['agent_mail'] }),
      },
    });
  });

  it('update changes only the given fields and keeps the password', async () => {
    const r = await cli([
      'tenants',
      'update',
      '-c',
      config,
      '--org',
      'gamma',
      '--after-sync',
      'delete',
      '--default-email',
      'new@gamma.example',
      '--no-require-manifest',
      '--enabled',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^updated tenant gamma: .*after sync delete/);
    const t = await tenantJson('gamma');
    expect(t).toMatchObject({
      enabled: true,
      dirs: ['/calls'],
      pollInterval: 120_000,
      maxConnections: 3,
      afterSync: 'delete',
      metadata: {
        defaultEmail: 'new@gamma.example',
        pattern: '^(?<email>[^_]+)_',
        dateFormat: 'DD/MM/YYYY',
        requireManifest: false,
        columns: expect.objectContaining({ email: ['agent_mail'] }),
      },
    });
    // The stored password still logs in.
    const test = await cli(['tenants', 'test', '-c', config, '--org', 'gamma']);
    expect(test.code).toBe(0);
  });

  it('update refuses invalid settings naming the field (exit 2), and changes nothing', async () => {
    const bad = await cli(['tenants', 'update', '-c', config, '--org', 'gamma', '--default-email', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /^ftp-sync: cannot update tenant: metadata\.defaultEmail: expected an email address/,
    );
    const json = await cli([
      'tenants',
      'update',
      '-c',
      config,
      '--org',
      'gamma',
      '--settings-json',
      '{"metadata":{"bogus":1}}',
    ]);
    expect(json.code).toBe(2);
    expect(json.stderr).toContain('metadata');
    expect((await tenantJson('gamma'))?.metadata.defaultEmail).toBe('new@gamma.example');
    const unknown = await cli(['tenants', 'update', '-c', config, '--org', 'nobody', '--disabled']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('ftp-sync: no onboarded tenant "nobody" (see: ftp-sync tenants list)\n');
  });

  it('update refuses a tenant of the configuration file', async () => {
    const withTenant = await writeConfig(dir.path, {
      redis: { url: redisUrl(), prefix },
      s3: { bucket: 'calls' },
      vela: { enabled: false },
      tenants: [{ org: 'filed', ftp: { host: '127.0.0.1', user: 'up', password: 'x' }, dirs: ['/'] }],
    });
    const r = await cli(['tenants', 'update', '-c', withTenant, '--org', 'filed', '--after-sync', 'delete']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ftp-sync: tenant "filed" is defined in the configuration file: edit it there/);
  });

  it('a passing tenants test, and new credentials given to update, end the poll backoff', async () => {
    const state = makeRedisState(redis, prefix);
    await state.setHealth('gamma', 'unhealthy', 'login refused', { poll: true });
    await state.setHealth('gamma', 'unhealthy', 'login refused', { poll: true });
    expect((await state.info('gamma')).pollFailures).toBe(2);
    const test = await cli(['tenants', 'test', '-c', config, '--org', 'gamma']);
    expect(test.code).toBe(0);
    expect(await state.info('gamma')).toMatchObject({ health: 'ok', pollFailures: 0 });

    const rotated = `${password}-2`;
    ftp.setPassword('up', rotated);
    try {
      await state.setHealth('gamma', 'unhealthy', 'login refused', { poll: true });
      const r = await cli(['tenants', 'update', '-c', config, '--org', 'gamma', '--password-stdin'], {
        input: `${rotated}\n`,
      });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('(new password)');
      expect(await state.info('gamma')).toMatchObject({ health: 'ok', pollFailures: 0 });
      expect((await cli(['tenants', 'test', '-c', config, '--org', 'gamma'])).code).toBe(0);
    } finally {
      ftp.setPassword('up', password);
    }
    expect((await cli(['tenants', 'remove', '-c', config, '--org', 'gamma'])).code).toBe(0);
  });

  it('removes the tenant and its credentials', async () => {
    const r = await cli(['tenants', 'remove', '-c', config, '--org', 'beta']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('removed tenant beta');
    expect(JSON.parse((await cli(['tenants', 'list', '-c', config, '--json'])).stdout)).toEqual([]);
    expect(await redis.hlen(`${prefix}:tenant-secrets`)).toBe(0);

    const again = await cli(['tenants', 'remove', '-c', config, '--org', 'beta']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('ftp-sync: no onboarded tenant "beta" (see: ftp-sync tenants list)\n');
  });

  it('never printed the password', () => {
    expect(allOutput.join('\n')).not.toContain(password);
  });
});

describe('ftp-sync status and resync', () => {
  const password = `pw-${randomBytes(8).toString('hex')}`;
  let dir: TempDir;
  let ftp: FtpTestServer;
  let s3: S3TestServer;
  let redis: Redis;
  let prefix: string;
  let config: string;
  let daemon: Daemon;
  let vela: VelaStandin;
  const velaToken = `tok-${randomBytes(6).toString('hex')}`;
  const logs = captureLog('warn');
  const acmeFiles = {
    'acme-calls/a.wav': 1_000,
    'acme-calls/b.wav': 250_000,
    'acme-calls/sub/c.mp3': 3_000,
  };

  beforeAll(async () => {
    dir = await tempDir('cli-resync');
    const root = join(dir.path, 'root');
    for (const [p, size] of Object.entries(acmeFiles)) await writeFileDeep(root, p, randomBytes(size));
    await writeFileDeep(root, 'acme-calls/notes.txt', 'not call data');
    // beta is past its minute allocation: its recordings are parked.
    await writeFileDeep(root, 'beta-calls/x.wav', randomBytes(500));
    await writeFileDeep(root, 'beta-calls/y.wav', randomBytes(600));
    ftp = await startFtpServer({ root, users: { acme: password } });
    s3 = await startS3();
    vela = await startVelaStandin({
      token: velaToken,
      allocations: { acme: { status: 'within' }, beta: { status: 'exceeded' } },
    });
    prefix = uniquePrefix('cli-resync');
    redis = new Redis(redisUrl());
    const ftpSettings = { host: '127.0.0.1', port: ftp.port, secure: false, user: 'acme', password };
    const doc = {
      redis: { url: redisUrl(), prefix },
      s3: { bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true },
      vela: { url: vela.url, token: velaToken },
      defaults: { pollInterval: '1h', minFileAge: '1ms', maxConnections: 2 },
      worker: { concurrency: 4 },
      tenants: [
        {
          org: 'acme',
          ftp: ftpSettings,
          dirs: ['/acme-calls'],
          metadata: { defaultEmail: 'agent@acme.test' },
        },
        {
          org: 'beta',
          ftp: ftpSettings,
          dirs: ['/beta-calls'],
          metadata: { defaultEmail: 'agent@beta.test' },
        },
      ],
    };
    config = await writeConfig(dir.path, doc);
    const parsed = parseConfig(doc);
    daemon = await startDaemon(parsed, {
      role: 'worker',
      log: logs.log,
      store: makeS3Store(parsed.s3, s3.client),
      poolIdleMs: 200,
    });
  });

  afterAll(async () => {
    await daemon?.close();
    if (redis) {
      const keys = (await dumpRedis(redis, prefix)).keys;
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    }
    await Promise.allSettled([ftp?.stop(), s3?.stop(), vela?.close()]);
    await dir?.cleanup();
  });

  it('status --json has the documented shape, stable and indented', async () => {
    const r = await cli(['status', '-c', config, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout) as Status;
    expect(r.stdout).toBe(`${JSON.stringify(status, null, 2)}\n`);
    expect(Object.keys(status)).toEqual(['generatedAt', 'tenants', 'totals', 'queues', 'batches']);
    expect(status.tenants.map((t) => t.org)).toEqual(['acme', 'beta']);
    expect(status.tenants[0]).toMatchObject({
      org: 'acme',
      origin: 'config',
      enabled: true,
      health: 'unknown',
      missingDirs: [],
      unsyncable: { count: 0, sample: [] },
      synced: { files: 0, bytes: 0 },
      jobs: { waiting: 0, active: 0, delayed: 0, failed: 0 },
      parked: [],
      failures: [],
      manifests: [],
    });
    expect(status.totals).toEqual({
      tenants: 2,
      unhealthy: 0,
      degraded: 0,
      files: 0,
      bytes: 0,
      parked: 0,
      failed: 0,
    });
    expect(status.queues.sync).toMatchObject({ waiting: 0, active: 0, failed: 0 });
    expect(r.stdout).not.toContain(password);
  });

  it('status --org of an unknown tenant exits 1 with a hint', async () => {
    const r = await cli(['status', '-c', config, '--org', 'nobody']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ftp-sync: no tenant "nobody" (see: ftp-sync tenants list)\n');
  });

  it('resync --dry-run counts what would be queued and queues nothing', async () => {
    const r = await cli(['resync', '-c', config, '--org', 'acme', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^dry run: would queue 3 file\(s\) \(248\.0 KiB\) of acme\n/);
    for (const p of Object.keys(acmeFiles)) expect(r.stdout).toContain(`  ${p}  `);
    const one = await cli([
      'resync',
      '-c',
      config,
      '--org',
      'acme',
      '--dry-run',
      '--path',
      'acme-calls/sub/**',
    ]);
    expect(one.stdout).toMatch(
      /^dry run: would queue 1 file\(s\) \(2\.9 KiB\) of acme\n {2}acme-calls\/sub\/c\.mp3/,
    );
    const counts = await daemon.syncQueue.getJobCounts(
      'waiting',
      'prioritized',
      'active',
      'delayed',
      'completed',
      'failed',
    );
    expect(Object.values(counts).every((n) => n === 0)).toBe(true);
  });

  it('resync queues the files, follows the batch and exits 0 when all are in S3', async () => {
    const r = await cli(['resync', '-c', config, '--org', 'acme']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^queued 3 file\(s\) \(248\.0 KiB\) of acme as batch [0-9a-f]{8}\n/);
    // Not a terminal: whole progress lines, no carriage returns.
    expect(r.stdout).not.toContain('\r');
    expect(r.stdout).toMatch(/\[##########\] 3\/3 files {2}248\.0\/248\.0 KiB/);
    expect(r.stdout).toMatch(/done: 3 of 3 file\(s\), 248\.0 KiB in .*: 3 uploaded/);
    const objects = await listAll(s3.client, s3.bucket, 'acme/');
    expect(objects.map((o) => [o.key, o.size])).toEqual(
      Object.entries(acmeFiles)
        .map(([p, size]) => [`acme/${p}`, size])
        .sort(),
    );
  });

  it('resync again finds everything in S3 and has nothing to do', async () => {
    const r = await cli(['resync', '-c', config, '--org', 'acme']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('queued 0 file(s) (0 B) of acme');
    expect(r.stdout).toContain('3 already in S3, skipped');
    expect(r.stdout).toContain('nothing to do (use --force to upload them again)');
  });

  it('resync exits 1 and lists the failures when a transfer fails for good', async () => {
    ftp.faults.failRetr = { path: '/acme-calls/b.wav', code: 550 };
    try {
      const r = await cli(['resync', '-c', config, '--org', 'acme', '--force', '--path', '**/b.wav']);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/failed 1/);
      expect(r.stdout).toMatch(/failed \(1\):\n {2}acme-calls\/b\.wav: .*550/);
    } finally {
      ftp.faults.failRetr = undefined;
    }
  });

  it('resync reports parked files as parked, not failed, and exits 3', async () => {
    const r = await cli(['resync', '-c', config, '--org', 'beta']);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/done: 0 of 2 file\(s\)/);
    expect(r.stdout).not.toMatch(/failed \(/);
    expect(r.stdout).toMatch(/parked \(2\): held back on purpose, not failed/);
    expect(r.stdout).toMatch(
      / {2}beta-calls\/x\.wav: allocation-exceeded \(Vela: minute allocation exceeded\)/,
    );
    expect(vela.calls().filter((c) => c.org_id === 'beta').length).toBeGreaterThanOrEqual(2);
  });

  it('a second resync releases the parked files (and they park again)', async () => {
    const r = await cli(['resync', '-c', config, '--org', 'beta', '--no-wait']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^queued 2 file\(s\) \(1\.1 KiB\) of beta as batch [0-9a-f]{8}; 2 parked file\(s\) released\n/,
    );
    expect(r.stdout).toContain('not waiting: follow it with ftp-sync status --org beta');
  });

  it('status shows synced files, parked files and recent failures in a table', async () => {
    const r = await cli(['status', '-c', config]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(
      /^ORG\s+HEALTH\s+LAST POLL\s+FILES\s+SYNCED\s+WAITING\s+ACTIVE\s+FAILED\s+PARKED$/,
    );
    expect(lines[1]).toMatch(/^acme\s+ok\s+never\s+3\s+248\.0 KiB\s+0\s+0\s+1\s+0$/);
    expect(lines[2]).toMatch(/^beta\s+ok\s+never\s+0\s+0 B\s+\d+\s+\d+\s+0\s+\d+$/);
    expect(r.stdout).toMatch(/\nacme\n {2}recent failures \(1\):\n {4}acme-calls\/b\.wav: .*550/);
    expect(r.stdout).toMatch(
      /\nbeta\n {2}parked \(2\):\n {4}beta-calls\/x\.wav {2}allocation-exceeded {2}since (?:just now|\S+ ago)/,
    );
    expect(r.stdout).toMatch(/totals: 2 tenant\(s\), 3 files \(248\.0 KiB\) synced, 2 parked, 1 failed/);
    expect(r.stdout).toMatch(/queues: sync waiting \d+, /);

    const j = JSON.parse((await cli(['status', '-c', config, '--json', '--org', 'acme'])).stdout) as Status;
    expect(j.tenants).toHaveLength(1);
    expect(j.tenants[0]).toMatchObject({ org: 'acme', synced: { files: 3, bytes: 254_000 } });
    expect(j.tenants[0]?.failures).toEqual([
      { path: 'acme-calls/b.wav', reason: expect.stringContaining('550') },
    ]);
  });

  it('status and tenants list run without the FTP password variables; tenants test names the missing one', async () => {
    const doc = parseYaml(await readFile(config, 'utf8')) as { tenants: { ftp: { password: string } }[] };
    for (const t of doc.tenants) t.ftp.password = '${ACME_FTP_PASSWORD}';
    const noPw = join(dirname(config), 'no-password.yaml');
    await writeFile(noPw, stringify(doc));
    const status = await cli(['status', '-c', noPw, '--json']);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect((JSON.parse(status.stdout) as Status).tenants.map((t) => t.org)).toEqual(['acme', 'beta']);
    const list = await cli(['tenants', 'list', '-c', noPw]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/acme/);
    const test = await cli(['tenants', 'test', '-c', noPw, '--org', 'acme']);
    expect(test.code).toBe(2);
    expect(test.stderr).toMatch(
      /tenants\[0\]\.ftp\.password: environment variable ACME_FTP_PASSWORD is not set/,
    );
  });

  it('never printed or logged the FTP password nor the Vela token', () => {
    for (const secret of [password, velaToken]) {
      expect(allOutput.join('\n')).not.toContain(secret);
      expect(logs.text()).not.toContain(secret);
    }
  });
});
