/**
 * Issue 2's end-to-end run against Debian's vsftpd: a real unix LIST format, no MLSD, a password
 * login. A nested tree with a zero-byte file, spaces and non-ASCII names, and one file past the
 * multipart threshold → every object exactly once, with the same bytes and the source metadata.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TempDir, tempDir, writeFileDeep } from '../support/fs.js';
import { type ServerEnv, startServerEnv } from '../support/servers/daemon-env.js';
import { type FtpServerUnderTest, startServer, tenantFtp } from '../support/servers/index.js';

const MB = 1024 * 1024;

function tree(): { path: string; size: number }[] {
  const files = [
    { path: 'empty.wav', size: 0 },
    { path: 'records/2024 03/agent one/call 1.wav', size: 64_000 },
    { path: 'records/équipe/appel ü 2.mp3', size: 33_333 },
    { path: 'records/日本/通話 3.wav', size: 12_345 },
    { path: 'records/Ærø/Ωmega 4.ogg', size: 4_096 },
    { path: 'records/big/twelve.wav', size: 12 * MB + 5 },
  ];
  for (let i = 0; i < 40; i++) {
    files.push({
      path: `records/agent ${i % 5}/day ${i % 4}/call-${i}.wav`,
      size: 500 + ((i * 7919) % 90_000),
    });
  }
  return files;
}

describe('end to end against vsftpd (LIST, no MLSD)', () => {
  let dir: TempDir;
  let server: FtpServerUnderTest;
  let env: ServerEnv;
  const expected = new Map<string, string>();

  beforeAll(async () => {
    dir = await tempDir('interop-vsftpd-e2e');
    const old = new Date(Date.now() - 3_600_000);
    for (const f of tree())
      expected.set(f.path, (await writeFileDeep(dir.path, f.path, f.size, { mtime: old })).sha256);
    server = await startServer('vsftpd', { root: dir.path, mode: 'plain' });
    env = await startServerEnv('vsftpd-e2e', [{ org: 'acme', ftp: tenantFtp(server) }]);
  });
  afterAll(async () => {
    await env?.stop();
    await server?.stop();
    await dir?.cleanup();
  });

  it('puts every file into S3 exactly once, with the same bytes and its source metadata', async () => {
    const started = Date.now();
    expect(await env.poll('acme')).toMatchObject({ matched: expected.size, enqueued: expected.size });
    expect((await env.idle(120_000)).failed).toBe(0);
    const seconds = (Date.now() - started) / 1000;
    expect(await env.objects('acme')).toEqual(expected);
    // One PutObject per file except the multipart one, whose parts are not counted here.
    expect(env.puts()).toBe(expected.size - 1);
    const synced = await env.state.allSynced('acme');
    expect(synced.size).toBe(expected.size);
    const rec = synced.get('records/日本/通話 3.wav');
    expect(rec).toMatchObject({ size: 12_345, key: 'acme/records/日本/通話 3.wav' });
    // A LIST time, not an exact one: vsftpd offers no MLSD.
    expect(rec?.mtime).toMatch(/^[A-Z][a-z]{2} \d{1,2} \d{2}:\d{2}$/);
    const bytes = tree().reduce((n, f) => n + f.size, 0);
    console.log(
      `vsftpd e2e: ${expected.size} files, ${(bytes / MB).toFixed(1)} MB in ${seconds.toFixed(2)} s ` +
        `(${(expected.size / seconds).toFixed(1)} files/s, ${(bytes / MB / seconds).toFixed(1)} MB/s)`,
    );
  });

  it('adds no job on the next poll', async () => {
    expect(await env.poll('acme')).toMatchObject({ enqueued: 0, unchanged: expected.size });
  });
});
