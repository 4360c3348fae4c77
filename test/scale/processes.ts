/**
 * ftp-sync daemons as real child processes (`node --import tsx src/cli.ts start`), each with its JSON
 * log kept in memory, parsed, so a test can look at what every replica did and when.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { stringify } from 'yaml';

/** One line of a daemon's pino log. */
export interface LogLine {
  level: number;
  time: string;
  msg: string;
  [field: string]: unknown;
}

export interface DaemonProcess {
  readonly name: string;
  readonly pid: number;
  /** Every log line so far, parsed (lines that are not JSON are kept as `{ msg }` with level 0). */
  logs(): LogLine[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits for a log line matching `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGKILL: the process dies holding whatever it holds. */
  kill(): Promise<void>;
  /** SIGTERM and wait (SIGKILL after `graceMs`); the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

const REPO = join(import.meta.dirname, '..', '..');

// Children still running when this process exits (a test that failed before its cleanup) are killed.
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Writes a configuration document as YAML into `dir` and returns the file name. */
export async function writeConfig(dir: string, name: string, doc: unknown): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, stringify(doc), { mode: 0o600 });
  return file;
}

/** Environment of a child: S3 credentials for s3rver (the AWS chain reads them), nothing else inherited that matters. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    NO_COLOR: '1',
    ...extra,
  };
}

/** Starts `ftp-sync start -c <configFile> --role <role>` and waits for its `ftp-sync started` line. */
export async function spawnDaemon(opts: {
  name: string;
  configFile: string;
  role?: 'all' | 'poller' | 'worker';
  env?: Record<string, string>;
  startTimeoutMs?: number;
}): Promise<DaemonProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli.ts', 'start', '-c', opts.configFile, '--role', opts.role ?? 'all'],
    { cwd: REPO, env: childEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  child.on('exit', () => running.delete(child));
  const lines: LogLine[] = [];
  const watchers = new Set<() => void>();
  const take = (text: string) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { level: 0, time: new Date().toISOString(), msg: text };
    }
    lines.push(line);
    for (const w of watchers) w();
  };
  createInterface({ input: child.stdout! }).on('line', take);
  createInterface({ input: child.stderr! }).on('line', take);
  const exited = once(child, 'exit').then(([code, signal]) => {
    for (const w of watchers) w();
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });

  const waitForLog: DaemonProcess['waitForLog'] = (pred, timeoutMs = 30_000) =>
    new Promise((resolve, reject) => {
      const found = lines.find(pred);
      if (found) return resolve(found);
      let seen = lines.length;
      const timer = setTimeout(() => {
        watchers.delete(check);
        reject(new Error(`${opts.name}: no matching log line within ${timeoutMs} ms`));
      }, timeoutMs);
      const check = () => {
        for (; seen < lines.length; seen++) {
          if (pred(lines[seen]!)) {
            clearTimeout(timer);
            watchers.delete(check);
            return resolve(lines[seen]!);
          }
        }
        if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          watchers.delete(check);
          reject(new Error(`${opts.name} exited:\n${lines.map((l) => l.msg).join('\n')}`));
        }
      };
      watchers.add(check);
    });

  const proc: DaemonProcess = {
    name: opts.name,
    pid: child.pid ?? -1,
    logs: () => lines,
    exited,
    waitForLog,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop(graceMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const { code } = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  try {
    await waitForLog((l) => l.msg === 'ftp-sync started', opts.startTimeoutMs ?? 30_000);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return proc;
}

/** Polls `fn` until it returns a truthy value (returned), or throws after `timeoutMs` saying `what`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  everyMs = 200,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}
