/**
 * A Node child process of the benchmark, spoken to over IPC: the measured programs run in processes of
 * their own so that their CPU time and peak RSS are theirs alone.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { openSync } from 'node:fs';

export interface Message {
  type: string;
  [k: string]: unknown;
}

export interface Child {
  readonly pid: number;
  send(m: Message): void;
  /** The next message of this type (earlier ones of other types are kept for their own `next`). */
  next<T extends Message = Message>(type: string, timeoutMs?: number): Promise<T>;
  /** Resolves with the exit code once the process ended. */
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

export function startChild(
  script: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; logFile?: string; nodeArgs?: string[] } = {},
): Child {
  const out = opts.logFile ? openSync(opts.logFile, 'a') : 'inherit';
  const proc: ChildProcess = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], {
    stdio: ['ignore', out, out, 'ipc'],
    env: { ...process.env, ...opts.env },
  });
  const inbox: Message[] = [];
  const waiting: { type: string; resolve: (m: Message) => void }[] = [];
  proc.on('message', (m: Message) => {
    const i = waiting.findIndex((w) => w.type === m.type || m.type === 'error');
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(m);
    else inbox.push(m);
  });
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  return {
    pid: proc.pid ?? -1,
    send: (m) => void proc.send?.(m),
    exited,
    async next<T extends Message>(type: string, timeoutMs = 30 * 60_000): Promise<T> {
      const i = inbox.findIndex((m) => m.type === type || m.type === 'error');
      const m =
        i >= 0
          ? inbox.splice(i, 1)[0]!
          : await new Promise<Message>((resolve, reject) => {
              const timer = setTimeout(
                () => reject(new Error(`${script}: no "${type}" in ${timeoutMs} ms`)),
                timeoutMs,
              );
              const entry = {
                type,
                resolve: (msg: Message) => {
                  clearTimeout(timer);
                  resolve(msg);
                },
              };
              waiting.push(entry);
              void exited.then((code) => {
                const j = waiting.indexOf(entry);
                if (j < 0) return;
                waiting.splice(j, 1);
                clearTimeout(timer);
                reject(new Error(`${script} exited (code ${code}) before sending "${type}"`));
              });
            });
      if (m.type === 'error') throw new Error(`${script}: ${String(m.message)}`);
      return m as T;
    },
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** In a child: report a failure to the parent and exit. */
export function failChild(err: unknown): void {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.send?.({ type: 'error', message });
  setTimeout(() => process.exit(1), 200);
}

/** In a child: the next message of `type` from the parent. */
export function receive<T extends Message = Message>(type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: Message) => {
      if (m?.type !== type) return;
      process.off('message', on);
      resolve(m as T);
    };
    process.on('message', on);
  });
}

/** In a child: tells the parent `type` happened and waits for its `ack` (a point to take readings). */
export async function mark(type: string, data: Record<string, unknown> = {}): Promise<void> {
  const ack = receive('ack');
  process.send?.({ type, ...data });
  await ack;
}
