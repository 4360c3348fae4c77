/**
 * Runs one FTP server binary in the foreground and knows when it is ready and how to stop it, with
 * every session process it forked (vsftpd, pure-ftpd and proftpd all fork one process per session,
 * and those outlive the listener unless killed).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect as connectTcp, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { connect as connectTls } from 'node:tls';
import { descendants, stopTree } from '../proc.js';

export interface ServerProcess {
  readonly pid: number;
  /** The last few KiB the process wrote to stdout and stderr (for error messages). */
  output(): string;
  /** Sessions (child processes) running right now. */
  sessions(): number;
  /** Kills the sessions, then the listener. Idempotent. */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  port: number;
  /** The port speaks TLS from the first byte (implicit FTPS): the readiness probe does a handshake. */
  implicitTls?: boolean;
  /** Where the readiness probe connects (a server in a network namespace). @defaultValue 127.0.0.1 */
  host?: string;
  env?: Record<string, string>;
}

/** Starts the server and resolves once a connection to `port` got a `220` banner. */
export async function spawnServer(opts: SpawnOptions): Promise<ServerProcess> {
  const child = spawn(opts.command, opts.args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, ...opts.env },
  });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const failed = Promise.race([
    once(child, 'exit').then(([code, signal]) => {
      throw new Error(`${opts.name} exited during start (${signal ?? `code ${code}`}): ${output.trim()}`);
    }),
    once(child, 'error').then(([err]) => {
      throw new Error(`cannot run ${opts.command}: ${(err as Error).message}`);
    }),
  ]);
  try {
    await Promise.race([waitForBanner(opts.name, opts.port, opts.implicitTls ?? false, opts.host), failed]);
  } catch (err) {
    await stopTree(child);
    throw err;
  } finally {
    failed.catch(() => {});
  }
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid!,
    output: () => output,
    sessions: () => (child.pid === undefined ? 0 : descendants(child.pid).length),
    stop() {
      stopping ??= stopTree(child);
      return stopping;
    },
  };
}

/**
 * Resolves once a connection got a `220` banner and was closed again. The pause afterwards lets the
 * server reap that session, which still counts towards its per-IP or per-user limits until then.
 */
async function waitForBanner(name: string, port: number, tls: boolean, host?: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const line = await firstLine(port, tls, 2000, host).catch(() => undefined);
    if (line?.startsWith('220')) return void (await delay(100));
    if (line !== undefined) throw new Error(`${name} answered: ${line}`);
    if (Date.now() > deadline) throw new Error(`${name} on port ${port}: no 220 banner`);
    await delay(50);
  }
}

/** The first reply line of the server; resolves after the connection closed (QUIT is sent). */
export function firstLine(port: number, tls = false, timeoutMs = 2000, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? connectTls({ host, port, rejectUnauthorized: false })
      : connectTcp(port, host);
    let text = '';
    let line: string | undefined;
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('timeout')));
    socket.on('data', (b) => {
      text += b.toString();
      const end = text.indexOf('\n');
      if (line === undefined && end >= 0) {
        line = text.slice(0, end).trimEnd();
        socket.end('QUIT\r\n');
      }
    });
    socket.on('error', reject);
    socket.on('close', () =>
      line === undefined ? reject(new Error('closed before banner')) : resolve(line),
    );
  });
}
