import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './fs.js';
import { freePort } from './ports.js';
import { kill } from './proc.js';

export interface RedisServer {
  url: string;
  port: number;
  /** Kills the server (SIGTERM, SIGKILL after 5 s) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stops and starts the server again on the same port. `wipe` (the default) starts empty, like a
   * Redis without persistence; `wipe: false` SAVEs first so the new process loads the same data.
   * Clients see their connection drop and must reconnect.
   */
  restart(opts?: { wipe?: boolean }): Promise<void>;
  /** Saves its data and stops the process (clients get connection refused) until `restart({ wipe: false })`. */
  down(): Promise<void>;
  /** SIGSTOP: the server keeps its connections and answers nothing (a hung Redis) until `resume`. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
}

const START_TIMEOUT_MS = 10_000;

/** Starts `redis-server` (from PATH) on a free 127.0.0.1 port, persisting nothing. */
export async function startRedis(): Promise<RedisServer> {
  const dir = await tempDir('redis');
  let port = 0;
  let proc: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    args.push('--dir', dir.path, '--dbfilename', 'dump.rdb', '--logfile', '');
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer) => {
      output = (output + b.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = once(child, 'exit').then(() => {
      throw new Error(`redis-server exited during start (port ${port}):\n${output}`);
    });
    const spawnError = once(child, 'error').then(([err]) => {
      throw new Error(`cannot run redis-server: ${(err as Error).message}`);
    });
    try {
      await Promise.race([waitForPong(port), exited, spawnError]);
    } catch (err) {
      await kill(child);
      throw err;
    } finally {
      exited.catch(() => {});
      spawnError.catch(() => {});
    }
    proc = child;
  };

  // The free port may be taken between freePort() and the bind: try a few ports.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      if (attempt >= 3) {
        await dir.cleanup();
        throw err;
      }
    }
  }

  const stopProcess = async () => {
    const child = proc;
    proc = undefined;
    if (child) await kill(child);
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await stopProcess();
      await dir.cleanup();
    },
    async restart(opts = {}) {
      const wipe = opts.wipe ?? true;
      if (!wipe && proc) await command(port, 'SAVE');
      await stopProcess();
      if (wipe) await rm(join(dir.path, 'dump.rdb'), { force: true });
      await launch();
    },
    async down() {
      if (proc) await command(port, 'SAVE');
      await stopProcess();
    },
    pause() {
      proc?.kill('SIGSTOP');
    },
    resume() {
      proc?.kill('SIGCONT');
    },
  };
}

async function waitForPong(port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      if ((await command(port, 'PING')).startsWith('+PONG')) return;
    } catch {
      // not listening yet (or still loading)
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends one inline command on a fresh connection and returns the first reply line. */
function command(port: number, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(5000, () => socket.destroy(new Error(`redis ${cmd}: timeout`)));
    socket.on('connect', () => socket.write(`${cmd}\r\n`));
    socket.on('data', (b) => {
      reply += b.toString();
      if (reply.includes('\r\n')) {
        socket.end();
        const line = reply.slice(0, reply.indexOf('\r\n'));
        if (line.startsWith('-')) reject(new Error(`redis ${cmd}: ${line}`));
        else resolve(line);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`redis ${cmd}: connection closed`)));
  });
}
