/**
 * SFTP as a source kind: the `sftp:` tenant block, and what the SFTP adapter does beyond the shared
 * conformance suite (test/conformance): key logins, host key pinning, cut/aborted/stalled transfers,
 * post-actions, and one tenant synced end to end through the daemon. Against OpenSSH's sshd on
 * 127.0.0.1 (test/support/sshd.ts: needs root and `openssh-server`).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hostKeyFingerprint } from '../src/adapters/sftp-entries.js';
import { connectSource } from '../src/adapters/source.js';
import { ConfigError, parseConfig, type TenantConfig } from '../src/config.js';
import { PermanentError, TenantError } from '../src/errors.js';
import { openOps } from '../src/ops/context.js';
import { testTenant } from '../src/ops/tenants.js';
import type { SourceSession } from '../src/ports/source.js';
import { makeTestEnv, type TestEnv, waitIdle } from './support/daemon.js';
import { sha256, tempDir, writeFileDeep } from './support/fs.js';
import { describeNeeding, missing } from './support/needs.js';
import { freePort } from './support/ports.js';
import { getObjectBuffer, listAll } from './support/s3.js';
import { type SshdServer, startSshd } from './support/sshd.js';

const FINGERPRINT = `SHA256:${'A'.repeat(43)}`;
const base = { s3: { bucket: 'b' }, vela: { enabled: false } };
const configOf = (...tenants: Record<string, unknown>[]) => parseConfig({ ...base, tenants });
const errorOf = (...tenants: Record<string, unknown>[]) => {
  try {
    configOf(...tenants);
    return 'no error';
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
};
const sftpTenant = (sftp: Record<string, unknown>) => ({
  org: 'acme',
  sftp: { host: 'sftp.acme.example', user: 'u', password: 'p', hostKeyFingerprint: FINGERPRINT, ...sftp },
});

/** A destination that counts bytes and can act on the count (cut, abort). */
function sink(onBytes?: (received: number) => void | Promise<void>) {
  let received = 0;
  const chunks: Buffer[] = [];
  const w = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      chunks.push(chunk);
      Promise.resolve(onBytes?.(received)).then(() => setTimeout(cb, 1), cb);
    },
  });
  w.on('error', () => {});
  return {
    w,
    get received() {
      return received;
    },
    body: () => Buffer.concat(chunks),
  };
}

describe('sftp configuration', () => {
  it('accepts an sftp tenant: port 22, host key checked, source summary filled in', () => {
    const t = configOf(sftpTenant({}), { org: 'beta', ftp: { host: 'ftp.beta.example' } }).tenants;
    expect(t[0]).toMatchObject({
      source: { kind: 'sftp', host: 'sftp.acme.example', port: 22, user: 'u' },
      sftp: { port: 22, verifyHostKey: true, hostKeyFingerprint: FINGERPRINT },
    });
    expect(t[0]!.ftp).toBeUndefined();
    expect(t[1]).toMatchObject({ source: { kind: 'ftp', host: 'ftp.beta.example', port: 21 } });
    expect(t[1]!.sftp).toBeUndefined();
  });

  it('requires hostKeyFingerprint unless verifyHostKey is false', () => {
    expect(errorOf(sftpTenant({ hostKeyFingerprint: undefined }))).toMatch(
      /^tenants\[0\]\.sftp\.hostKeyFingerprint: required unless verifyHostKey is false/,
    );
    expect(errorOf(sftpTenant({ hostKeyFingerprint: undefined, verifyHostKey: false }))).toBe('no error');
  });

  it("rejects a fingerprint not in ssh-keygen's SHA256: form", () => {
    expect(
      errorOf(sftpTenant({ hostKeyFingerprint: 'MD5:12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0' })),
    ).toMatch(/^tenants\[0\]\.sftp\.hostKeyFingerprint: expected SHA256: and 43 base64 characters/);
  });

  it('wants exactly one of ftp and sftp in a tenant', () => {
    expect(errorOf({ org: 'acme' })).toBe('tenants[0]: expected an ftp or an sftp block');
    expect(errorOf({ ...sftpTenant({}), ftp: { host: 'h' } })).toBe(
      'tenants[0].sftp: a tenant has either ftp or sftp, not both',
    );
  });

  it('wants a password or a privateKeyFile for an sftp tenant of the file', () => {
    expect(errorOf(sftpTenant({ password: undefined }))).toBe(
      'tenants[0].sftp: expected a password or a privateKeyFile',
    );
    expect(errorOf(sftpTenant({ password: undefined, privateKeyFile: '/keys/id_ed25519' }))).toBe('no error');
  });

  it('config check prints the SFTP source and its host key, never its password', async () => {
    const dir = await tempDir('sftp-config-check');
    try {
      const file = join(dir.path, 'ftp-sync.yaml');
      const password = `pw-${randomBytes(6).toString('hex')}`;
      await writeFile(
        file,
        JSON.stringify({
          ...base,
          tenants: [
            sftpTenant({ host: '127.0.0.1', port: 2222, password }),
            { org: 'beta', sftp: { host: 'h', user: 'u', password, verifyHostKey: false } },
          ],
        }),
      );
      const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', 'src/cli.ts', 'config', 'check', '-c', file],
          {
            env: { ...process.env, NO_COLOR: '1', FTPSYNC_CONFIG: '' },
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => {
          stdout += b;
        });
        child.stderr.on('data', (b: Buffer) => {
          stderr += b;
        });
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0);
      expect(out.stdout).toContain(`acme: 127.0.0.1:2222 SFTP, host key ${FINGERPRINT}`);
      expect(out.stdout).toContain('beta: h:22 SFTP (warning: host key not verified)');
      expect(out.stdout).not.toContain(password);
    } finally {
      await dir.cleanup();
    }
  });
});

describeNeeding(missing.sshd(), 'SFTP source against OpenSSH sshd', () => {
  let server: SshdServer;
  const tenantOf = (sftp: Record<string, unknown> = {}): TenantConfig =>
    configOf({
      org: 'acme',
      sftp: {
        host: '127.0.0.1',
        port: server.port,
        user: server.user,
        password: server.password,
        hostKeyFingerprint: server.hostKeyFingerprint,
        ...sftp,
      },
    }).tenants[0]!;
  const login = (sftp: Record<string, unknown> = {}, password = server.password, timeoutMs?: number) =>
    connectSource(tenantOf(sftp), { user: server.user, password }, { timeoutMs });
  const remote = (rel: string) => posix.join(server.root, rel);
  const sessions: SourceSession[] = [];
  const open = async (...args: Parameters<typeof login>) => {
    const s = await login(...args);
    sessions.push(s);
    return s;
  };

  beforeAll(async () => {
    server = await startSshd();
    await writeFileDeep(server.root, 'calls/a.wav', 'hello sftp');
    await writeFileDeep(server.root, 'calls/big.wav', 4 * 1024 * 1024);
  });

  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('computes a host key fingerprint exactly as ssh-keygen -lf prints it', () => {
    const blob = Buffer.from(server.hostPublicKey.split(' ')[1]!, 'base64');
    expect(hostKeyFingerprint(blob)).toBe(server.hostKeyFingerprint);
  });

  it('logs in with a private key alone', async () => {
    const s = await open({ password: undefined, privateKeyFile: server.privateKeyFile }, '');
    expect((await s.list(remote('calls'))).map((e) => e.name)).toContain('a.wav');
  });

  it('logs in with an encrypted key and its passphrase; a wrong passphrase is a TenantError', async () => {
    const key = { password: undefined, privateKeyFile: server.encryptedKeyFile };
    const s = await open({ ...key, passphrase: server.passphrase }, '');
    expect(s.healthy).toBe(true);
    const err = await login({ ...key, passphrase: 'not-it' }, '').catch((e) => e);
    expect(err).toBeInstanceOf(TenantError);
    expect(String(err.message)).not.toContain(server.passphrase);
  });

  it('names an unreadable key file in a TenantError, never its content', async () => {
    const err = await login({ privateKeyFile: join(server.root, 'no-such-key') }).catch((e) => e);
    expect(err).toBeInstanceOf(TenantError);
    expect(err.message).toMatch(/cannot read privateKeyFile .*no-such-key: ENOENT/);
  });

  it('says which host key it saw when it does not match the pinned one', async () => {
    const err = await login({ hostKeyFingerprint: FINGERPRINT }).catch((e) => e);
    expect(err).toBeInstanceOf(TenantError);
    expect(err.message).toContain(`(ssh-ed25519) is ${server.hostKeyFingerprint}, expected ${FINGERPRINT}`);
  });

  it('logs in whatever the host key with verifyHostKey: false', async () => {
    const s = await open({ hostKeyFingerprint: undefined, verifyHostKey: false });
    expect(s.healthy).toBe(true);
  });

  it('treats a closed port as a transient error, not a tenant error', async () => {
    const err = await login({ port: await freePort() }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/connection to 127\.0\.0\.1 refused/);
  });

  it('rejects a download cut by a dropped connection (retryable) and marks the session unhealthy', async () => {
    const s = await open();
    let cut = false;
    const out = sink(async (n) => {
      if (!cut && n >= 256 * 1024) {
        cut = true;
        await server.cutSessions();
      }
    });
    const err = await s.download(remote('calls/big.wav'), out.w).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(PermanentError);
    expect(out.received).toBeLessThan(4 * 1024 * 1024);
    expect(s.healthy).toBe(false);
  });

  it('stops a download on abort: it rejects with the reason and the session is unhealthy', async () => {
    const s = await open();
    const abort = new AbortController();
    const out = sink((n) => {
      if (n >= 256 * 1024) abort.abort(new Error('shutting down'));
    });
    const err = await s.download(remote('calls/big.wav'), out.w, abort.signal).catch((e) => e);
    expect(err.message).toMatch(/shutting down/);
    expect(s.healthy).toBe(false);
  });

  it('renames (replacing an existing target) and removes files', async () => {
    await writeFileDeep(server.root, 'post/new.wav', 'new');
    await writeFileDeep(server.root, 'post/done/new.wav', 'old');
    await server.giveToUser(join(server.root, 'post'));
    const s = await open();
    await s.rename!(remote('post/new.wav'), remote('post/done/new.wav'));
    expect(await readFile(join(server.root, 'post/done/new.wav'), 'utf8')).toBe('new');
    await s.remove!(remote('post/done/new.wav'));
    expect(await readdir(join(server.root, 'post/done'))).toEqual([]);
    await expect(s.remove!(remote('post/done/new.wav'))).rejects.toBeInstanceOf(PermanentError);
    expect(s.healthy).toBe(true);
  });

  // Freezes every session of the server: keep it last in this block.
  it('fails a request the server never answers after timeoutMs and marks the session unhealthy', async () => {
    const s = await open({}, server.password, 1_000);
    await server.freezeSessions();
    const started = Date.now();
    const err = await s.list(remote('calls')).catch((e) => e);
    expect(err.message).toMatch(/no answer within 1 s \(timeout\)/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(s.healthy).toBe(false);
  });
});

describeNeeding(missing.sshd(), 'an SFTP tenant in the daemon', () => {
  let server: SshdServer;
  let env: TestEnv;
  const files = new Map<string, string>();

  beforeAll(async () => {
    server = await startSshd();
    for (const [path, size] of [
      ['calls/équipe/appel 1.wav', 70_000],
      ['calls/empty.wav', 0],
      ['calls/big.wav', 9 * 1024 * 1024],
    ] as const) {
      files.set(path, (await writeFileDeep(server.root, path, size)).sha256);
    }
    env = await makeTestEnv('sftp-daemon', {
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
  });

  afterAll(async () => {
    await env?.stop();
    await server?.stop();
  });

  it('syncs every file into S3 intact, and `tenants test` reports the SFTP source', async () => {
    const daemon = await env.start();
    await daemon.poller!.pollNow('acme');
    expect(await daemon.poller!.pollNow('acme')).toMatchObject({ kind: 'done', enqueued: files.size });
    expect((await waitIdle(daemon.syncQueue)).failed).toBe(0);
    // Without a chroot the source root is the server's `/`: keys carry the whole path.
    const prefix = `acme/${server.root.slice(1)}/`;
    const keys = (await listAll(env.s3.client, env.s3.bucket, 'acme/')).map((o) => o.key).sort();
    expect(keys).toEqual([...files.keys()].map((p) => prefix + p).sort());
    for (const [path, hash] of files) {
      expect(sha256(await getObjectBuffer(env.s3.client, env.s3.bucket, prefix + path)), path).toBe(hash);
    }

    const ops = openOps(env.config, env.logs.log);
    try {
      const report = await testTenant(ops, 'acme');
      expect(report).toMatchObject({ ok: true, listingFormat: 'SFTP', matched: files.size });
      expect(report.message).toBe(`logged in to 127.0.0.1:${server.port} and listed ${server.root}/calls`);
    } finally {
      await ops.close();
    }
    expect(env.logs.text()).not.toContain(server.password);
  });
});
