import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, parseDuration } from '../src/config.js';

const EXAMPLE = fileURLToPath(new URL('../config/example.yaml', import.meta.url));
/** Every variable config/example.yaml references, set. */
const EXAMPLE_ENV = {
  VELA_TOKEN: 'v',
  FTPSYNC_HTTP_TOKEN: 'h',
  ACME_FTP_USER: 'acme',
  ACME_FTP_PASSWORD: 'pw1',
  GLOBEX_FTP_PASSWORD: 'pw2',
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cfg-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const base = { s3: { bucket: 'calls' }, vela: { enabled: false } };
const tenant = (extra: object = {}) => ({ org: 'acme', ftp: { host: 'ftp.acme.example' }, ...extra });

function errorOf(doc: unknown, env: Record<string, string> = {}): string {
  try {
    parseConfig(doc, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('applies defaults and freezes the result', () => {
    const c = parseConfig({ ...base, tenants: [tenant()] });
    expect(c.tenants[0]).toMatchObject({
      pollInterval: 60_000,
      minFileAge: 30_000,
      maxConnections: 2,
      dirs: ['/'],
    });
    expect(c.tenants[0]!.ftp).toMatchObject({ port: 21, secure: 'explicit', verifyCertificate: true });
    expect(c.redis).toMatchObject({ url: 'redis://127.0.0.1:6379', prefix: 'ftpsync' });
    expect(Object.isFrozen(c.tenants[0]!.ftp)).toBe(true);
  });

  it('names the field and what was expected', () => {
    const doc = { ...base, tenants: [tenant(), { org: 'b', ftp: { host: 'h', port: 'abc' } }] };
    expect(errorOf(doc)).toBe('tenants[1].ftp.port: expected a number from 1 to 65535, got "abc"');
  });

  it('expands ${ENV} and accepts numeric strings', () => {
    const c = parseConfig(
      { ...base, tenants: [tenant({ ftp: { host: 'h', port: '${P}', password: '${PW}', secure: false } })] },
      { P: '2121', PW: 's3cret' },
    );
    expect(c.tenants[0]!.ftp).toMatchObject({ port: 2121, password: 's3cret', secure: false });
  });

  it('reports a missing environment variable with the field', () => {
    expect(errorOf({ ...base, tenants: [tenant({ ftp: { host: 'h', password: '${NOPE}' } })] })).toBe(
      'tenants[0].ftp.password: environment variable NOPE is not set',
    );
  });

  it.each([
    [
      { ...base, tenants: [tenant({ pollInterval: '-5s' })] },
      'tenants[0].pollInterval: a duration cannot be negative',
    ],
    [
      { ...base, tenants: [tenant({ pollInterval: '0s' })] },
      'tenants[0].pollInterval: expected a duration above 0 (0 would poll without a pause)',
    ],
    [{ ...base, defaults: { minFileAge: '-1s' } }, 'defaults.minFileAge: a duration cannot be negative'],
    [{ ...base, defaults: { minFileAge: 'soon' } }, 'defaults.minFileAge: expected a duration'],
    [
      { ...base, worker: { lockDuration: '0ms' } },
      'worker.lockDuration: expected a duration above 0 (another worker would take every running job)',
    ],
    [
      { ...base, tenants: [tenant({ pollInterval: 'often' })] },
      'tenants[0].pollInterval: expected a duration',
    ],
    [{ ...base, tenants: [tenant({ colour: 'red' })] }, 'tenants[0]: unknown key "colour"'],
    [{ ...base, tenants: [tenant(), tenant()] }, 'tenants[1].org: duplicate org "acme"'],
    [{ ...base, tenants: [tenant({ org: 'Bad Org' })] }, 'tenants[0].org: expected lower-case'],
    [
      { ...base, tenants: [tenant({ ftp: { host: 'h', secure: 'maybe' } })] },
      'tenants[0].ftp.secure: expected false, explicit or implicit',
    ],
    [{ s3: { bucket: 'b' }, vela: { url: 'http://v/a' } }, 'vela.token'],
    [{ s3: { bucket: 'b' } }, 'vela: '],
    [{ ...base, s3: { bucket: 'b', keyTemplate: '{path}' } }, 's3.keyTemplate'],
  ])('rejects a bad document (%#)', (doc, message) => {
    expect(errorOf(doc)).toContain(message);
  });

  it('rejects an empty file', async () => {
    await writeFile(join(dir, 'empty.yaml'), '');
    await expect(loadConfig(join(dir, 'empty.yaml'), {})).rejects.toThrow('the configuration is empty');
    await writeFile(join(dir, 'bad.yaml'), 'a: [');
    await expect(loadConfig(join(dir, 'bad.yaml'), {})).rejects.toThrow('not valid YAML');
    await expect(loadConfig(join(dir, 'missing.yaml'), {})).rejects.toThrow('cannot read');
  });

  it('accepts 0 where it means none: minFileAge, manifestWait, shutdownTimeout, cacheTtl', () => {
    const c = parseConfig(
      {
        ...base,
        defaults: { minFileAge: '0s' },
        worker: { shutdownTimeout: '0s' },
        credentials: { cacheTtl: '0s' },
        tenants: [tenant({ minFileAge: '0ms', metadata: { requireManifest: true, manifestWait: '0s' } })],
      },
      {},
    );
    expect(c.defaults.minFileAge).toBe(0);
    expect(c.worker.shutdownTimeout).toBe(0);
    expect(c.tenants[0]!.minFileAge).toBe(0);
    expect(c.tenants[0]!.metadata.manifestWait).toBe(0);
  });

  it('reports every missing variable of the example at once, each with its field', async () => {
    const err = await loadConfig(EXAMPLE, {}).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues).toEqual([
      'vela.token: environment variable VELA_TOKEN is not set',
      'http.token: environment variable FTPSYNC_HTTP_TOKEN is not set',
      'tenants[0].ftp.user: environment variable ACME_FTP_USER is not set',
      'tenants[0].ftp.password: environment variable ACME_FTP_PASSWORD is not set',
      'tenants[1].ftp.password: environment variable GLOBEX_FTP_PASSWORD is not set',
    ]);
    expect(err.message).toBe(err.issues.join('\n'));
    // With them all set, the example loads.
    const c = await loadConfig(EXAMPLE, EXAMPLE_ENV);
    expect(c.tenants.map((t) => t.org)).toEqual(['acme', 'globex']);
  });

  it('an empty variable in a required secret is an error naming the field', async () => {
    const err = await loadConfig(EXAMPLE, { ...EXAMPLE_ENV, ACME_FTP_PASSWORD: '', VELA_TOKEN: '' }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues).toEqual([
      expect.stringMatching(/^vela\.token: environment variable VELA_TOKEN is set but empty/),
      expect.stringMatching(
        /^tenants\[0\]\.ftp\.password: environment variable ACME_FTP_PASSWORD is set but empty/,
      ),
    ]);
    const sftp = {
      ...base,
      tenants: [
        {
          org: 's',
          sftp: { host: 'h', user: 'u', privateKeyFile: '${KEY}', verifyHostKey: false, passphrase: '${PP}' },
        },
      ],
    };
    expect(errorOf(sftp, { KEY: '', PP: '' }).split('\n')).toEqual([
      expect.stringMatching(/^tenants\[0\]\.sftp\.privateKeyFile: environment variable KEY is set but empty/),
      expect.stringMatching(/^tenants\[0\]\.sftp\.passphrase: environment variable PP is set but empty/),
    ]);
    // Not a secret: an empty user or an empty http.token (which turns the token off) is accepted.
    expect(() => loadConfig(EXAMPLE, { ...EXAMPLE_ENV, FTPSYNC_HTTP_TOKEN: '' })).not.toThrow();
    await expect(loadConfig(EXAMPLE, { ...EXAMPLE_ENV, FTPSYNC_HTTP_TOKEN: '' })).resolves.toBeDefined();
  });

  it('reports variables, schema problems and duplicates together, a field once', () => {
    const doc = {
      ...base,
      defaults: { pollInterval: 'often' },
      tenants: [
        tenant({ ftp: { host: 'h', port: '${PORT}', password: '${PW}' } }),
        tenant({ maxConnections: 0 }),
      ],
    };
    expect(errorOf(doc).split('\n')).toEqual([
      'tenants[0].ftp.port: environment variable PORT is not set',
      'tenants[0].ftp.password: environment variable PW is not set',
      expect.stringMatching(/^defaults\.pollInterval: expected a duration/),
      'tenants[1].maxConnections: expected a number from 1 to 64, got 0',
      'tenants[1].org: duplicate org "acme" (also tenants[0])',
    ]);
  });

  it('a YAML syntax error names the line, the column and what was expected', async () => {
    const file = join(dir, 'syntax.yaml');
    await writeFile(file, 's3:\n  bucket: calls\ntenants: [\n  { org: a\n');
    const err = await loadConfig(file, {}).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const first = err.message.split('\n')[0];
    expect(first).toMatch(/syntax\.yaml:\d+:\d+: not valid YAML: \S.*\(line \d+, column \d+\)$/);
    expect(first).not.toMatch(/:\s*$/);
    await writeFile(file, 'a: 1\n\tb: 2\n');
    expect((await loadConfig(file, {}).catch((e) => e)).message).toMatch(
      /syntax\.yaml:2:1: not valid YAML: Tabs are not allowed as indentation \(line 2, column 1\)\n(.*\n)* {4}\tb: 2\n/,
    );
  });

  it('parses durations', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('250ms')).toBe(250);
  });
});

describe('afterSync configuration', () => {
  const withAfter = (extra: object, defaults: object = {}) => ({
    ...base,
    defaults,
    tenants: [tenant(extra)],
  });

  it('defaults to keep; delete and move are taken, move with its template', () => {
    expect(parseConfig(withAfter({})).tenants[0]).toMatchObject({ afterSync: 'keep' });
    expect(parseConfig(withAfter({ afterSync: 'delete' })).tenants[0]).toMatchObject({ afterSync: 'delete' });
    const moved = parseConfig(
      withAfter({ afterSync: 'move', moveTo: '/archive/{date}/{path}', dirs: ['/calls'] }),
    );
    expect(moved.tenants[0]).toMatchObject({ afterSync: 'move', moveTo: '/archive/{date}/{path}' });
    // The tenant inherits both from defaults.
    const inherited = parseConfig(
      withAfter({ dirs: ['/calls'] }, { afterSync: 'move', moveTo: '/done/{name}' }),
    );
    expect(inherited.tenants[0]).toMatchObject({ afterSync: 'move', moveTo: '/done/{name}' });
  });

  it.each([
    [{ afterSync: 'move' }, 'tenants[0].moveTo: required when afterSync is move'],
    [{ afterSync: 'purge' }, 'tenants[0].afterSync: expected keep, delete or move, got "purge"'],
    [{ afterSync: 'move', moveTo: 'archive/{path}' }, 'tenants[0].moveTo: expected an absolute path'],
    [{ afterSync: 'move', moveTo: '/archive/{file}' }, 'tenants[0].moveTo: unknown placeholder {file}'],
    [{ afterSync: 'move', moveTo: '/archive/{date}' }, 'tenants[0].moveTo: expected {path} or {name}'],
    [{ afterSync: 'move', moveTo: '/archive/../{path}' }, 'tenants[0].moveTo: a . or .. segment'],
    [{ afterSync: 'move', moveTo: '' }, 'tenants[0].moveTo: expected a path template'],
    // dirs [/] watches the target too: moved files would be synced again.
    [
      { afterSync: 'move', moveTo: '/archive/{path}' },
      'tenants[0].moveTo: "/archive/{path}" moves /sample.wav',
    ],
    [
      { afterSync: 'move', moveTo: '/calls/done/{name}', dirs: ['/calls'] },
      'inside the watched directories, where it would be synced again',
    ],
  ])('rejects a bad after-sync setting (%#), naming the field', (extra, message) => {
    expect(errorOf(withAfter(extra))).toContain(message);
  });

  it('takes a target inside the watched directories when exclude covers it', () => {
    const c = parseConfig(
      withAfter({ afterSync: 'move', moveTo: '/archive/{path}', exclude: ['archive/**'] }),
    );
    expect(c.tenants[0]).toMatchObject({ afterSync: 'move', exclude: ['archive/**'] });
  });

  it('expands the template, and refuses a target with . or ..', async () => {
    const { expandMoveTo } = await import('../src/sync/move-target.js');
    const at = Date.UTC(2024, 2, 5, 23, 59);
    expect(expandMoveTo('/archive/{date}/{path}', 'calls/a b/x.wav', at)).toBe(
      '/archive/2024-03-05/calls/a b/x.wav',
    );
    expect(expandMoveTo('/done/{dir}/{name}', 'x.wav', at)).toBe('/done/x.wav');
    expect(expandMoveTo('/done/{dir}/{name}.old', 'a/x.wav', at)).toBe('/done/a/x.wav.old');
    expect(() => expandMoveTo('/done/{path}', 'a/../x.wav', at)).toThrow(/not allowed/);
  });
});
