/**
 * `npm run demo`: the real daemon (`startDaemon`, role all) against a sandbox it starts on 127.0.0.1
 * — Redis, an FTP server with three tenants' call data, an S3-compatible store and the Vela stand-in —
 * with a progress line while it syncs, then a summary per tenant and where to look. Exits 0 when
 * every file ended synced or parked as designed. `--follow` keeps it all running until Ctrl-C.
 *
 * Everything lives in one temporary directory, removed at exit (also on Ctrl-C); the daemon's log
 * goes to a file there, not to the console.
 */
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ConfigError } from '../config.js';
import { makeLogger } from '../log.js';
import { type Daemon, startDaemon } from '../main.js';
import { type OpsContext, openOps } from '../ops/context.js';
import { makeRoot, type Root } from '../root.js';
import {
  freePort,
  SANDBOX_S3_CREDENTIALS,
  SANDBOX_S3_REGION,
  type Sandbox,
  SandboxError,
  startSandbox,
} from '../sandbox/index.js';
import type { ValidationReport } from '../sync/metadata/report.js';
import { headMetadata, listBucket, readValidationReport, verifyObjects } from './bucket.js';
import { configHasHttp, DEMO_HTTP_TOKEN, demoConfigDocument, writeDemoConfig } from './config.js';
import { follow, followHints } from './follow.js';
import { probeHttp } from './http.js';
import { progressLine, summaryLines, whereLines } from './report.js';
import { buildScenario, type DemoTenant, expectedFiles } from './scenario.js';
import { type Snapshot, waitForOutcome } from './watch.js';

const USAGE = `usage: npm run demo [-- [--follow] [--keep]]
  --follow  after the summary, keep the sandbox and the daemon running until Ctrl-C
  --keep    keep the sandbox directory (data, daemon log, config) after exit`;

/** How long the scenario may take to play out before the demo gives up. */
const SETTLE_TIMEOUT_MS = 45_000;
const BUCKET = 'calls';

/** Console output: one updating progress line on a terminal, plain lines otherwise. */
function makeOutput(stream: NodeJS.WriteStream = process.stdout) {
  const tty = stream.isTTY === true;
  let pending = false; // a progress line without its newline is on screen
  let lastPlain = '';
  const endProgress = () => {
    if (pending) stream.write('\n');
    pending = false;
  };
  return {
    line(text = '') {
      endProgress();
      stream.write(`${text}\n`);
    },
    progress(text: string, key: string) {
      if (tty) {
        stream.write(`\r\x1b[2K${text}`);
        pending = true;
      } else if (key !== lastPlain) {
        stream.write(`${text}\n`);
      }
      lastPlain = key;
    },
    endProgress,
  };
}
type Output = ReturnType<typeof makeOutput>;

/**
 * Ctrl-C (or SIGTERM) aborts `stop`: the demo then shuts the daemon down and removes the sandbox.
 * `npm run` passes the terminal's Ctrl-C on a second time, so a repeat within 1.5 s is ignored; a
 * later one kills Redis and removes the directory at once.
 */
function handleSignals(stop: AbortController, forceCleanup: () => void): () => void {
  const handlers: [NodeJS.Signals, () => void][] = [];
  let first = 0;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      if (!first) {
        first = Date.now();
        stop.abort(signal);
        return;
      }
      if (Date.now() - first < 1_500) return;
      process.stderr.write('\nsecond signal: stopping at once\n');
      forceCleanup();
      process.exit(130);
    };
    process.on(signal, handler);
    handlers.push([signal, handler]);
  }
  process.on('exit', forceCleanup);
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

async function writeSampleData(sandbox: Sandbox, tenants: DemoTenant[]): Promise<void> {
  // A little in the past, as files copied from a call recorder would be.
  const mtime = new Date(Date.now() - 60_000);
  for (const t of tenants) {
    const home = sandbox.ftp.tenants[t.org]!.home;
    for (const f of t.files) {
      const path = join(home, ...f.path.split('/'));
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, f.body);
      await utimes(path, mtime, mtime);
    }
  }
}

/** Removes the demo's keys from a Redis it did not start (REDIS_URL). */
async function removeKeys(root: Root, prefix: string): Promise<void> {
  const redis = root.redis();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

function unmetLines(s: Snapshot): string[] {
  return s.files
    .filter((f) => !f.met)
    .map((f) => {
      const want = f.expect.kind === 'parked' ? `parked (${f.expect.reason})` : 'synced';
      const is = f.actual.kind === 'parked' ? `parked (${f.actual.reason})` : f.actual.kind;
      return `  ${f.org}/${f.path}: expected ${want}, is ${is}${f.failure ? ` — failed: ${f.failure}` : ''}`;
    });
}

/** The daemon's warnings and errors, for a run that did not go as designed. */
async function logProblems(file: string, max = 15): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const lines: string[] = [];
  for (const raw of text.split('\n')) {
    try {
      const entry = JSON.parse(raw) as {
        level?: number;
        msg?: string;
        org?: string;
        path?: string;
        err?: unknown;
      };
      // Plain FTP is the demo's choice (loopback only): that warning is expected, not a problem.
      if ((entry.level ?? 0) < 40 || entry.msg?.startsWith('plain FTP')) continue;
      const err = typeof entry.err === 'string' ? entry.err : (entry.err as { message?: string })?.message;
      lines.push(
        `  ${[entry.org, entry.path].filter(Boolean).join(' ')} ${entry.msg ?? ''}${err ? `: ${err}` : ''}`.trimEnd(),
      );
    } catch {
      // not a JSON line
    }
  }
  return lines.slice(-max);
}

interface RunContext {
  stop: AbortController;
  out: Output;
  /** Called once the sandbox exists, with what a forced exit must undo. */
  onSandbox: (sandbox: Sandbox) => void;
}

async function run(
  opts: { follow: boolean; keep: boolean },
  { stop, out, onSandbox }: RunContext,
): Promise<number> {
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  const tenants = buildScenario();

  // The daemon reads S3 credentials from the standard AWS chain: point it at the sandbox's store.
  process.env.AWS_ACCESS_KEY_ID = SANDBOX_S3_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = SANDBOX_S3_CREDENTIALS.secretAccessKey;
  process.env.AWS_REGION = SANDBOX_S3_REGION;
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;

  out.line('ftp-sync demo: starting a sandbox on 127.0.0.1 (Redis, FTP, S3, Vela stand-in)…');
  const sandbox = await startSandbox({
    orgs: tenants.map((t) => t.org),
    bucket: BUCKET,
    allocations: Object.fromEntries(tenants.map((t) => [t.org, t.allocation])),
    redisUrl: process.env.REDIS_URL || undefined,
    keep: opts.keep,
  });
  onSandbox(sandbox);

  let daemon: Daemon | undefined;
  let ops: OpsContext | undefined;
  let root: Root | undefined;
  let logDest: { end(): void } | undefined;
  // With a Redis the demo did not start, its keys get a prefix of their own and are removed at exit.
  const prefix = sandbox.redis.spawned ? 'demo' : `demo-${process.pid}-${Date.now().toString(36)}`;
  try {
    out.line(`  sandbox     ${sandbox.dir}`);
    const redis = sandbox.redis;
    out.line(
      `  redis       ${redis.spawned ? `${redis.url} (redis-server pid ${redis.pid}, started for the demo)` : 'REDIS_URL'}`,
    );
    out.line(
      `  ftp         ftp://${sandbox.ftp.host}:${sandbox.ftp.port} (one user and home directory per tenant)`,
    );
    out.line(`  s3          ${sandbox.s3.endpoint} bucket ${BUCKET}`);
    out.line(`  vela        ${sandbox.vela.url} (stand-in)`);

    await writeSampleData(sandbox, tenants);
    const expected = tenants.reduce((n, t) => n + expectedFiles(t).length, 0);
    const skipped = tenants.reduce((n, t) => n + t.files.length, 0) - expected;
    out.line(
      `  sample data ${tenants.length} tenants (${tenants.map((t) => t.org).join(', ')}), ${expected} call files` +
        (skipped ? ` (+${skipped} the include filter skips)` : ''),
    );

    const httpPort = configHasHttp() ? await freePort() : undefined;
    const configFile = join(sandbox.dir, 'ftp-sync.yaml');
    const config = await writeDemoConfig(
      configFile,
      demoConfigDocument(sandbox, tenants, { prefix, httpPort }),
    );
    const logFile = join(sandbox.dir, 'ftp-sync.log');
    const dest = pino.destination({ dest: logFile, sync: true });
    logDest = dest;
    const log = makeLogger({ level: config.log.level }, dest);

    daemon = await startDaemon(config, { role: 'all', log });
    root = makeRoot(config, log, { tenantCacheMs: 0 });
    ops = openOps(root);
    out.line(`Daemon started (role all, polls every 2 s; a file is synced once two polls saw it unchanged)`);

    const snap = await waitForOutcome(ops, tenants, {
      deadline: Date.now() + SETTLE_TIMEOUT_MS,
      signal: stop.signal,
      onSnapshot: (s) => {
        const c = s.counts;
        out.progress(progressLine(s, elapsed()), `${c.synced}/${c.parked}/${c.failed}/${c.retrying}`);
      },
    });
    out.endProgress();
    if (stop.signal.aborted && !snap.settled) {
      out.line('Stopped before the sync finished.');
      return 130;
    }
    const syncMs = elapsed();

    // Read the way a consumer of the data would, through the same object store the daemon writes with.
    const bucket = root.store();
    const verified = await verifyObjects(bucket, tenants);
    const reports = new Map<string, ValidationReport>();
    for (const st of snap.status.tenants) {
      for (const m of st.manifests) {
        const report = await readValidationReport(bucket, `${m.key}.errors.json`);
        if (report) reports.set(`${m.key}.errors.json`, report);
      }
    }
    out.line();
    for (const l of summaryLines({ snapshot: snap, tenants, reports, bucket: BUCKET })) out.line(l);

    const objects = await listBucket(bucket);
    const first = tenants
      .flatMap((t) => expectedFiles(t).map((f) => ({ t, f })))
      .find(({ f }) => f.expect.kind === 'synced' && f.path.endsWith('.wav'));
    const sampleKey = first ? `${first.t.org}/${first.f.path}` : undefined;
    const sample =
      sampleKey && objects.some((o) => o.key === sampleKey)
        ? { key: sampleKey, metadata: await headMetadata(bucket, sampleKey) }
        : undefined;
    const http = httpPort !== undefined ? await probeHttp(httpPort, DEMO_HTTP_TOKEN) : [];
    out.line();
    for (const l of whereLines({
      bucket: BUCKET,
      endpoint: sandbox.s3.endpoint,
      objects,
      sample,
      configFile,
      logFile,
      follow: opts.follow,
      http,
      httpToken: DEMO_HTTP_TOKEN,
    })) {
      out.line(l);
    }

    out.line();
    const ok = snap.settled && verified.problems.length === 0;
    if (ok) {
      out.line(
        `OK: all ${snap.files.length} files ended as designed in ${(syncMs / 1000).toFixed(1)} s — ` +
          `${snap.counts.synced} synced (${verified.checked} verified byte for byte in S3), ${snap.counts.parked} parked.`,
      );
    } else {
      out.line(`FAILED after ${(syncMs / 1000).toFixed(1)} s: not every file ended as designed.`);
      for (const l of unmetLines(snap)) out.line(l);
      if (!snap.reportsDone) out.line('  a manifest has no validation report yet');
      if (snap.busy) out.line(`  ${snap.busy} sync jobs still waiting or running`);
      for (const p of verified.problems) out.line(`  ${p}`);
      const problems = await logProblems(logFile);
      if (problems.length) {
        out.line('Warnings and errors from the daemon log:');
        for (const l of problems) out.line(l);
      }
    }

    if (opts.follow && !stop.signal.aborted) {
      out.line();
      for (const l of followHints(sandbox, tenants)) out.line(l);
      await follow(
        ops,
        tenants.map((t) => t.org),
        out,
        stop.signal,
      );
      out.line();
    }
    return ok ? 0 : 1;
  } finally {
    out.endProgress();
    out.line(opts.keep ? `Stopping (keeping ${sandbox.dir})…` : 'Stopping and cleaning up…');
    const problems: string[] = [];
    const step = async (name: string, fn: () => Promise<unknown>, timeoutMs = 15_000) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
      });
      try {
        await Promise.race([fn(), timeout]);
      } catch (err) {
        problems.push(`${name}: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    };
    if (root && !sandbox.redis.spawned) await step('redis keys', () => removeKeys(root!, prefix));
    if (ops) await step('status connection', () => ops!.close());
    if (daemon) await step('daemon', () => daemon!.close());
    logDest?.end();
    problems.push(...(await sandbox.stop()));
    for (const p of problems) process.stderr.write(`cleanup: ${p}\n`);
  }
}

async function main(): Promise<number> {
  let values: { follow?: boolean; keep?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        follow: { type: 'boolean' },
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const stop = new AbortController();
  let sandbox: Sandbox | undefined;
  const removeHandlers = handleSignals(stop, () => sandbox?.killNow());
  const out = makeOutput();
  try {
    return await run(
      { follow: values.follow === true, keep: values.keep === true },
      {
        stop,
        out,
        onSandbox: (s) => {
          sandbox = s;
        },
      },
    );
  } catch (err) {
    out.endProgress();
    if (err instanceof SandboxError) console.error(`ftp-sync demo: ${err.message}`);
    else if (err instanceof ConfigError) console.error(`ftp-sync demo: configuration error: ${err.message}`);
    else console.error(`ftp-sync demo: ${(err as Error).stack ?? err}`);
    return 1;
  } finally {
    removeHandlers();
  }
}

process.exitCode = await main();
// Anything a library left behind (sockets, timers) must not keep the demo alive after cleanup.
setTimeout(() => process.exit(), 2_000).unref();
