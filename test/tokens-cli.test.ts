/**
 * `ftp-sync tokens create | list | revoke`, run as the real program (a child process) against a real
 * Redis: the token is printed once, alone on the last line (or as {"token": …}), works against the
 * store, is never listed, and is refused once revoked; an API-only org shows in `status`.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { makeRedisApiTokens } from '../src/adapters/redis-api.js';
import { makeRedisState } from '../src/adapters/redis-state.js';
import type { Status } from '../src/ops/status.js';
import { redisUrl, uniquePrefix } from './support/env.js';
import { type TempDir, tempDir } from './support/fs.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('ftp-sync tokens', () => {
  let dir: TempDir;
  let config: string;
  let redis: Redis;
  const prefix = uniquePrefix('tokens-cli');

  const cli = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
      delete env.FTPSYNC_CONFIG;
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args, '-c', config], {
        cwd: ROOT,
        env,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString();
      });
      child.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });

  beforeAll(async () => {
    dir = await tempDir('tokens-cli');
    config = join(dir.path, 'config.yaml');
    await writeFile(
      config,
      stringify({ redis: { url: redisUrl(), prefix }, s3: { bucket: 'calls' }, vela: { enabled: false } }),
    );
    redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await dir.cleanup();
  });

  it('create prints the token alone on the last line; --json prints {"token"}; list never shows one; revoke refuses it at once', async () => {
    const tokens = makeRedisApiTokens(redis, prefix);
    const created = await cli(['tokens', 'create', '--org', 'apionly']);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const token = created.stdout.trimEnd().split('\n').pop()!;
    expect(token).toMatch(/^fsk_\S+$/);
    expect(await tokens.verify(token)).toBe('apionly');
    expect(await tokens.verify(`${token.slice(0, -1)}x`)).toBeUndefined();
    // Only the hash is stored.
    expect(JSON.stringify(await redis.hgetall(`${prefix}:api-tokens`))).not.toContain(
      token.split('_').pop()!,
    );

    const asJson = await cli(['tokens', 'create', '--org', 'apionly', '--json']);
    expect(asJson.code).toBe(0);
    const second = (JSON.parse(asJson.stdout) as { token: string }).token;
    expect(await tokens.verify(second)).toBe('apionly');

    const list = await cli(['tokens', 'list', '--org', 'apionly', '--json']);
    const rows = JSON.parse(list.stdout) as { id: string; org: string }[];
    expect(rows).toHaveLength(2);
    expect(list.stdout).not.toContain(token);
    expect(list.stdout).not.toContain(second);
    const id = token.slice(4, 15);
    expect(rows.map((r) => r.id)).toContain(id);

    const revoked = await cli(['tokens', 'revoke', '--org', 'apionly', '--id', id]);
    expect(revoked).toMatchObject({ code: 0 });
    expect(await tokens.verify(token)).toBeUndefined();
    expect(await tokens.verify(second)).toBe('apionly');

    const unknown = await cli(['tokens', 'revoke', '--org', 'other', '--id', rows[1]!.id]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('--id');
    const badOrg = await cli(['tokens', 'create', '--org', 'Bad Org']);
    expect(badOrg.code).toBe(1);
    expect(badOrg.stderr).toContain('--org');
  }, 120_000);

  it('an org that uses only the API shows in status with its calls', async () => {
    await makeRedisState(redis, prefix).markSynced(
      'apionly',
      'api/x/call.wav',
      { size: 10, mtime: '2024-03-05T00:00:00.000Z', key: 'apionly/api/x/call.wav', syncedAt: Date.now() },
      'api',
    );
    const status = await cli(['status', '--json']);
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout) as Status;
    expect(s.tenants.find((t) => t.org === 'apionly')).toMatchObject({
      origin: 'api',
      synced: { files: 1, bytes: 10 },
      metadata: { api: 1 },
    });
    const human = await cli(['status']);
    expect(human).toMatchObject({ code: 0, stderr: '' });
    expect(human.stdout).toContain('apionly');
  }, 60_000);
});
