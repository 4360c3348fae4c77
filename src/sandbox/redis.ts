/**
 * The sandbox's Redis: the one at `url` (REDIS_URL) when it answers, else a `redis-server` spawned on
 * a free 127.0.0.1 port that persists nothing. The spawned server runs in its own process group, so a
 * Ctrl-C in the terminal reaches the demo (which shuts the daemon down first) but not Redis.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { SandboxError } from './errors.js';
import { freePort } from './ports.js';

export interface SandboxRedis {
  url: string;
  /** True when this sandbox started the server (and will stop it). */
  spawned: boolean;
  pid?: number;
  /** Stops a spawned server (SIGTERM, then SIGKILL after 3 s). Idempotent. */
  stop(): Promise<void>;
  /** Last resort on a forced exit: SIGKILL, synchronously. */
  killNow(): void;
}

const INSTALL_HINT =
  'install Redis (apt-get install redis-server, or brew install redis) or set REDIS_URL=redis://host:port';

/** Resolves when `url` answers PING; rejects with the reason otherwise. */
async function pingRedis(url: string, timeoutMs = 2_000): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // ioredis rejects connect() with a bare "Connection is closed"; the event has the real cause.
  let cause: Error | undefined;
  client.on('error', (err: Error) => {
    cause ??= err;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    throw cause ?? err;
  } finally {
    client.disconnect();
  }
}

export async function startRedis(opts: { dir: string; url?: string }): Promise<SandboxRedis> {
  let externalProblem: string | undefined;
  if (opts.url) {
    try {
      await pingRedis(opts.url);
      return { url: opts.url, spawned: false, stop: async () => {}, killNow: () => {} };
    } catch (err) {
      externalProblem = `REDIS_URL (${redactUrl(opts.url)}) does not answer: ${(err as Error).message}`;
    }
  }
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await spawnRedis(opts.dir, await freePort());
    } catch (err) {
      lastError = err as Error;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') break; // not installed: no point retrying
    }
  }
  const spawnProblem =
    (lastError as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
      ? 'redis-server is not installed'
      : `redis-server did not start (${lastError?.message.split('\n')[0]})`;
  throw new SandboxError(
    `${externalProblem ? `${externalProblem}, and ` : ''}${spawnProblem}: ${INSTALL_HINT}`,
  );
}

async function spawnRedis(dir: string, port: number): Promise<SandboxRedis> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  args.push('--dir', dir, '--logfile', '', '--daemonize', 'no');
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-2000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  const url = `redis://127.0.0.1:${port}`;
  const failed = new Promise<never>((_, reject) => {
    child.once('error', reject); // ENOENT: not installed
    child.once('exit', (code) => {
      const last = output.trim().split('\n').at(-1) ?? '';
      reject(new Error(`exited with code ${code}${last ? `: ${last}` : ''}`));
    });
  });
  failed.catch(() => {});
  try {
    await Promise.race([waitForPong(url), failed]);
  } catch (err) {
    await kill(child);
    throw err;
  }

  let stopping: Promise<void> | undefined;
  return {
    url,
    spawned: true,
    pid: child.pid,
    stop() {
      stopping ??= kill(child);
      return stopping;
    },
    killNow() {
      if (isRunning(child)) child.kill('SIGKILL');
    },
  };
}

async function waitForPong(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await pingRedis(url, 500);
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`no answer to PING on ${url}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const isRunning = (child: ChildProcess) =>
  child.pid !== undefined && child.exitCode === null && child.signalCode === null;

async function kill(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

/** `redis://user:secret@host:6379` → `redis://user:***@host:6379`. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}
