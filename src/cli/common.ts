/**
 * What every command shares: reading the configuration, opening (and always closing) the admin
 * context, errors that end in one line with a hint, and argument parsers.
 */
import { InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { makeRedisClient } from '../adapters/redis-client.js';
import { type Config, type LoadOptions, loadConfig, parseDuration } from '../config.js';
import { makeLogger } from '../log.js';
import { type OpsContext, openOps } from '../ops/context.js';
import { colourEnabled, makeStyle, type Style } from './render.js';

const DEFAULT_CONFIG = 'config/ftp-sync.yaml';

/** A failure to tell the operator: one line, an optional hint, an exit code. */
export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: number;
  readonly hint?: string;
  constructor(message: string, opts: { exitCode?: number; hint?: string } = {}) {
    super(message);
    this.exitCode = opts.exitCode ?? 1;
    this.hint = opts.hint;
  }
}

export async function readConfig(file: string | undefined, opts: LoadOptions = {}): Promise<Config> {
  return loadConfig(file ?? process.env.FTPSYNC_CONFIG ?? DEFAULT_CONFIG, process.env, opts);
}

export const configOption = () =>
  new Option('-c, --config <file>', `configuration file (default: $FTPSYNC_CONFIG or ${DEFAULT_CONFIG})`);

export const orgOption = () => new Option('--org <id>', 'tenant (org_id)').makeOptionMandatory();

/** The `Examples:` block at the end of a command's help. */
export const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;

/** Logs of the operations go to stderr, warnings and worse only: stdout stays clean for --json. */
function opsLogger() {
  return makeLogger({ level: 'warn' }, pino.destination({ dest: 2, sync: true }));
}

/** A Redis URL fit to print: without user and password. */
function safeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(the configured redis.url)';
  }
}

const REDIS_TIMEOUT_MS = 5_000;

/**
 * Fails fast, in one line, when Redis does not answer: the daemon's client (`makeRedis`) waits
 * through outages, which at a terminal would look like a hang. The probe never retries.
 */
async function probeRedis(redis: Config['redis']): Promise<void> {
  // The same kind of client as the daemon's (server, sentinel or cluster), told to give up at once.
  const probe = makeRedisClient(redis, {
    lazyConnect: true,
    connectTimeout: REDIS_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    sentinelRetryStrategy: () => null,
  });
  // What the message names: the first startup node of a cluster, the first sentinel, or the server.
  const [field, where] = redis.nodes
    ? ['nodes', redis.nodes[0]!]
    : redis.sentinel
      ? ['sentinel', redis.sentinel.nodes[0]!]
      : ['url', redis.url];
  let cause: Error | undefined;
  probe.on('error', (err: Error) => {
    cause ??= err;
  });
  try {
    await probe.connect();
    await probe.ping();
    await probe.quit();
  } catch (err) {
    // Not disconnect() on a connection already ended: ioredis would then hold the process for 2 s.
    if (probe.status !== 'end') probe.disconnect();
    const url = safeRedisUrl(where.includes('://') ? where : `redis://${where}`);
    throw new CliError(`cannot reach Redis at ${url} (${(cause ?? (err as Error)).message})`, {
      hint: `is it running? check redis.${field} in the configuration`,
    });
  }
}

/** Opens the admin context, runs `fn` and closes the context whatever happens, so the process can exit. */
export async function withOps<T>(config: Config, fn: (ctx: OpsContext) => Promise<T>): Promise<T> {
  await probeRedis(config.redis);
  const ctx = openOps(config, opsLogger());
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

/** Where a command prints for humans, and whether it may use colours and redraw lines. */
export interface Output {
  tty: boolean;
  style: Style;
  /** Terminal width, when known. */
  columns?: number;
  line(text?: string): void;
  write(text: string): void;
}

export function stdout(): Output {
  const s = process.stdout;
  return {
    tty: Boolean(s.isTTY),
    style: makeStyle(colourEnabled(s, process.env)),
    columns: s.isTTY ? s.columns : undefined,
    line: (text = '') => void s.write(`${text}\n`),
    write: (text) => void s.write(text),
  };
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export function parseIntArg(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError('expected a whole number');
  return n;
}

export function parseDurationArg(v: string): string {
  try {
    parseDuration(v);
    return v;
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** For options given more than once: `--dir /a --dir /b`. */
export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The whole of stdin as text. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}
