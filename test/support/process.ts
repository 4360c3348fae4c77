/**
 * The daemon as a real child process: `node --import tsx src/cli.ts start -c <file> --role <role>`,
 * with its JSON log lines captured, so tests can `kill -9` it, send SIGTERM and watch it exit.
 *
 * Every process started here is remembered; `stopAllDaemons()` (call it in `afterEach`) kills what a
 * test left running and says so, so a failing test never leaves a daemon behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** The repository root (this file is test/support/process.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** One pino log line of the daemon (`level` 30 = info, 40 = warn, 50 = error). */
export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface DaemonProcess {
  readonly pid: number;
  readonly name: string;
  /** Parsed JSON log lines so far (stdout). */
  lines(): LogLine[];
  /** Everything written to stdout and stderr so far (for assertions on secrets, and for failures). */
  output(): string;
  /** Resolves with the first log line (past or future) that matches; rejects after `timeoutMs` or on exit. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the process exited (at once if it already has). */
  waitExit(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly exited: boolean;
}

export interface SpawnDaemonOptions {
  /** A configuration file written by `writeConfigFile`. */
  config: string;
  role?: 'all' | 'poller' | 'worker';
  /** Extra environment; the process gets the s3rver credentials and no FTPSYNC_CONFIG by default. */
  env?: Record<string, string>;
  /** Label for messages (default `<role>-<n>`). */
  name?: string;
}

/** Writes `config` as YAML into `dir` and returns the file's path. */
export async function writeConfigFile(dir: string, config: unknown, name = 'ftp-sync.yaml'): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, stringify(config), { mode: 0o600 });
  return file;
}

const running = new Set<DaemonProcess>();
let counter = 0;
// Should the test process itself exit with daemons still running (a crashed test), they die with it.
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export function spawnDaemon(opts: SpawnDaemonOptions): DaemonProcess {
  const role = opts.role ?? 'all';
  const name = opts.name ?? `${role}-${++counter}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    // s3rver accepts exactly these credentials; the SDK reads them from the standard chain.
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    NO_COLOR: '1',
    ...opts.env,
  };
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join('src', 'cli.ts'), 'start', '-c', opts.config, '--role', role],
    { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  if (child.pid === undefined) throw new Error(`${name}: could not spawn the daemon`);

  const lines: LogLine[] = [];
  let text = '';
  let partial = '';
  const watchers = new Set<() => void>();
  const notify = () => {
    for (const w of [...watchers]) w();
  };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    text += chunk;
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const raw of parts) {
      if (!raw.trim()) continue;
      try {
        lines.push(JSON.parse(raw) as LogLine);
      } catch {
        lines.push({ level: 0, msg: raw });
      }
    }
    notify();
  });
  child.stderr!.on('data', (chunk: string) => {
    text += chunk;
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = once(child, 'exit').then(([code, signal]) => {
    exit = { code: code as number | null, signal: signal as NodeJS.Signals | null };
    running.delete(proc);
    notify();
    return exit;
  });

  const proc: DaemonProcess = {
    pid: child.pid,
    name,
    lines: () => [...lines],
    output: () => text,
    get exited() {
      return exit !== undefined;
    },
    waitForLog(match, timeoutMs = 30_000) {
      return new Promise((resolvePromise, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < lines.length; seen++) {
            if (match(lines[seen]!)) return done(() => resolvePromise(lines[seen]!));
          }
          if (exit) {
            done(() =>
              reject(
                new Error(`${name} exited (${JSON.stringify(exit)}) before the log line came:\n${tail()}`),
              ),
            );
          }
        };
        const timer = setTimeout(
          () => done(() => reject(new Error(`${name}: no matching log line in ${timeoutMs} ms:\n${tail()}`))),
          timeoutMs,
        );
        const done = (fn: () => void) => {
          clearTimeout(timer);
          watchers.delete(check);
          fn();
        };
        watchers.add(check);
        check();
      });
    },
    kill(signal = 'SIGTERM') {
      if (!exit) child.kill(signal);
    },
    async waitExit(timeoutMs = 30_000) {
      if (exit) return exit;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${name} did not exit within ${timeoutMs} ms:\n${tail()}`)),
          timeoutMs,
        );
      });
      try {
        return await Promise.race([exitPromise, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
  const tail = () => text.split('\n').slice(-30).join('\n');
  running.add(proc);
  return proc;
}

/** Kills (SIGKILL) every daemon still running and returns their names: a test should leave none. */
export async function stopAllDaemons(): Promise<string[]> {
  const left = [...running];
  for (const p of left) p.kill('SIGKILL');
  await Promise.all(left.map((p) => p.waitExit(10_000).catch(() => {})));
  return left.map((p) => p.name);
}

/** Resolves once `proc` logged that it started (its roles are running). */
export function started(proc: DaemonProcess, timeoutMs = 30_000): Promise<LogLine> {
  return proc.waitForLog((l) => l.msg === 'ftp-sync started', timeoutMs);
}
