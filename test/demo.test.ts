/**
 * `npm run demo` as a user runs it: a child process that starts its own sandbox (redis-server, FTP,
 * S3, Vela stand-in), runs the real daemon, prints a summary and cleans everything up.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { redisUrl } from './support/env.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TIMEOUT_MS = 90_000;

interface DemoRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when the output matches `re` (rejects if the demo exits first). */
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

const running = new Set<ChildProcess>();
const redisPids = new Set<number>();

/** The demo spawns its own redis-server; without one installed it is handed the tests' Redis. */
function demoEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, FORCE_COLOR: '0' };
  delete env.REDIS_URL;
  if (spawnSync('redis-server', ['--version']).error) env.REDIS_URL = redisUrl();
  return env;
}

function startDemo(args: string[] = []): DemoRun {
  const started = Date.now();
  // One process (no tsx wrapper), so a signal sent to it reaches the demo itself.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/demo/main.ts', ...args], {
    cwd: ROOT,
    env: demoEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    const pid = /redis-server pid (\d+)/.exec(out)?.[1];
    if (pid) redisPids.add(Number(pid));
    for (const w of [...waiters]) {
      const m = w.re.exec(out);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>(
    (resolve) => {
      child.on('exit', (code, signal) => {
        running.delete(child);
        resolve({ code, signal, ms: Date.now() - started });
      });
    },
  );
  const timer = setTimeout(() => {
    // Too slow: SIGTERM lets the demo clean up; SIGKILL if even that hangs.
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  }, TIMEOUT_MS);
  void exited.then(() => clearTimeout(timer));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re) {
      const m = re.exec(out);
      if (m) return Promise.resolve(m);
      return Promise.race([
        new Promise<RegExpMatchArray>((resolve) => waiters.push({ re, resolve })),
        exited.then(() => {
          throw new Error(`the demo exited before printing ${re}:\n${out}\n${err}`);
        }),
      ]);
    },
  };
}

/** True when `pid` is a live redis-server (a reused pid running something else does not count). */
function isRedisServer(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('redis-server');
  } catch {
    return true; // no /proc: the process exists, assume the worst
  }
}

/** The summary block of one tenant: from its heading to the next heading. */
function tenantBlock(stdout: string, org: string): string {
  const start = stdout.indexOf(`\n  ${org} — `);
  expect(start, `no summary block for ${org}`).toBeGreaterThan(-1);
  const rest = stdout.slice(start + 1);
  const end = rest.slice(1).search(/\n {2}\S|\n\S/);
  return end === -1 ? rest : rest.slice(0, end + 1);
}

function expectCleanedUp(stdout: string): void {
  if (!/redis {7}REDIS_URL/.test(stdout))
    expect(redisPids.size, 'the demo prints its redis-server pid').toBe(1);
  const dir = /sandbox {5}(\S+)/.exec(stdout)?.[1];
  expect(dir, 'the demo prints its sandbox directory').toBeTruthy();
  expect(existsSync(dir!), `${dir} is removed`).toBe(false);
  for (const pid of redisPids) expect(isRedisServer(pid), `redis-server ${pid} is stopped`).toBe(false);
}

afterEach(() => {
  // A failed test must not leave a demo or its Redis running.
  for (const child of running) child.kill('SIGKILL');
  for (const pid of redisPids) {
    if (isRedisServer(pid)) process.kill(pid, 'SIGKILL');
  }
  redisPids.clear();
});

describe('npm run demo', () => {
  it(
    'syncs three tenants as designed, prints a summary per tenant and leaves nothing running',
    async () => {
      const demo = startDemo();
      const { code, ms } = await demo.exited;
      const stdout = demo.stdout();
      expect(code, `${stdout}\n${demo.stderr()}`).toBe(0);
      console.log(`demo finished in ${(ms / 1000).toFixed(1)} s`);

      const acme = tenantBlock(stdout, 'acme');
      expect(acme).toMatch(/synced\s+5 files/);
      expect(acme).toMatch(/parked\s+0/);
      expect(acme).toMatch(/manifest\s+1 row error/);
      expect(acme).toContain('records/calls-2024-03.csv: 4 rows, 3 accepted, 1 row error');
      expect(acme).toMatch(/line 5: agent_email "dana\.at\.acme\.example": not an email address/);

      const globex = tenantBlock(stdout, 'globex');
      expect(globex).toMatch(/synced\s+1 file\b/);
      expect(globex).toMatch(/parked\s+3 — allocation-exceeded/);

      const initech = tenantBlock(stdout, 'initech');
      expect(initech).toMatch(/synced\s+4 files/);
      expect(initech).toMatch(/parked\s+0/);

      for (const block of [acme, globex, initech]) expect(block).toMatch(/failures\s+0/);
      expect(stdout).toMatch(
        /OK: all 13 files ended as designed .* 10 synced \(10 verified byte for byte in S3\), 3 parked/,
      );
      // Where to look: bucket keys, one object's call metadata, the status command, the daemon log.
      expect(stdout).toMatch(/\d+ {2}acme\/calls\/2024-03-04\/call-0001\.wav/);
      expect(stdout).toMatch(/email=alice@acme\.example {2}date-of-call=2024-03-04 {2}voice-id=enrolled/);
      expect(stdout).toMatch(/npx tsx src\/cli\.ts status -c \S+ftp-sync\.yaml/);
      expect(stdout).toMatch(/daemon log {2}\S+ftp-sync\.log/);
      expectCleanedUp(stdout);
    },
    TIMEOUT_MS + 15_000,
  );

  it(
    '--follow keeps syncing new files until Ctrl-C, then cleans up',
    async () => {
      const demo = startDemo(['--follow']);
      await demo.waitFor(/Following:/);
      const dir = /sandbox {5}(\S+)/.exec(demo.stdout())![1]!;
      const folder = join(dir, 'ftp', 'initech', 'voice', '2024-03-05');
      await copyFile(
        join(folder, 'peter.gibbons@initech.example_2024-03-05_0930.wav'),
        join(folder, 'new.agent@initech.example_2024-03-05_1200.wav'),
      );
      await demo.waitFor(
        /initech\/voice\/2024-03-05\/new\.agent@initech\.example_2024-03-05_1200\.wav {2}synced/,
      );

      demo.child.kill('SIGINT');
      const { code } = await demo.exited;
      expect(code, `${demo.stdout()}\n${demo.stderr()}`).toBe(0);
      expect(demo.stdout()).toContain('Stopping and cleaning up');
      expectCleanedUp(demo.stdout());
    },
    TIMEOUT_MS + 15_000,
  );
});
