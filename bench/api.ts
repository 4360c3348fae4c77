/**
 * `npm run bench:api [-- --requests=200 --orgs=20 --rounds=7 --warmup=10 --profile --count-redis]`
 *
 * The upload API under a burst: `requests` presign requests at once, spread over `orgs` orgs (each
 * with its own token). Four processes on 127.0.0.1: this one (the load generator: the clients only),
 * the API server (bench/api-child.ts, role `api`, log level info), the Vela stand-in
 * (bench/vela-child.ts), and redis-server; plus s3rver (bench/s3-child.ts; a presign makes no S3
 * request, it is only there because the role needs a store).
 *
 * Per round: latency percentiles seen by the clients, errors, the Vela calls counted at the stand-in
 * per org (each must equal that org's requests: none lost, none doubled), the pending uploads
 * recorded, the CPU time per request of the server, the stand-in and Redis, the Redis commands per
 * request, and the machine's 1-minute load average. Then the best round and the median round (by p99).
 *
 * How to read p99: when all requests arrive at once, the last answer cannot come before the server
 * spent (requests × its CPU per request) / (cores it gets); on 2 shared cores with the stand-in, Redis
 * and the clients busy too, the server gets about one. The CPU per request is the figure that does not
 * depend on what else the machine runs.
 *
 * `--profile`: a `.cpuprofile` of the API server over all timed rounds in bench/results/profiles
 * (summarise with `npx tsx bench/profile-summary.ts FILE`). `--count-redis`: the server's Redis
 * connection goes through a counting proxy (in this process) to count round trips per request.
 *
 * Needs redis-server on PATH. Not part of any test suite.
 */
import { writeFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Agent } from 'undici';
import { makeRedisApiTokens } from '../src/adapters/redis-api.js';
import { stateKey } from '../src/adapters/redis-keys.js';
import { startRedis } from '../test/support/redis.js';
import { type Child, startChild } from './lib/child.js';
import { commandStats, diffStats, startRedisCounter } from './lib/redis-count.js';
import { median, table } from './lib/report.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '200' },
    orgs: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '7' },
    warmup: { type: 'string', default: '10' },
    profile: { type: 'boolean', default: false },
    'count-redis': { type: 'boolean', default: false },
  },
});
const REQUESTS = Number(values.requests);
const ORGS = Number(values.orgs);
const ROUNDS = Number(values.rounds);
const WARMUP = Number(values.warmup);
const TARGET_P99_MS = 50;

const project = fileURLToPath(new URL('..', import.meta.url));
const tsxArgs = ['--import', 'tsx'];
const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function usage(child: Child): Promise<number> {
  child.send({ type: 'usage' });
  return cpuMs((await child.next<{ type: string; cpu: NodeJS.CpuUsage }>('usage', 30_000)).cpu);
}

/** redis-server's own CPU time (INFO cpu), ms. */
async function redisCpuMs(redis: Redis): Promise<number> {
  const text = await redis.info('cpu');
  const v = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);
  return (v('used_cpu_sys') + v('used_cpu_user')) * 1000;
}

interface Round {
  round: number;
  errors: number;
  statuses: string;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  wallMs: number;
  serverCpuMs: number;
  velaCpuMs: number;
  redisCpuMs: number;
  clientCpuMs: number;
  redisCommands: number;
  /** Commands by name, per request. */
  redisByName: string;
  redisWrites?: number;
  velaCalls: number;
  mismatchedOrgs: number;
  pending: number;
  load: number;
}

async function main() {
  // The AWS SDK's notice that its 2027 releases need Node 22, once per child process.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const redisServer = await startRedis();
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const counter = values['count-redis'] ? await startRedisCounter(redisServer.port) : undefined;
  const work = join(tmpdir(), `ftp-sync-bench-api-${process.pid}`);
  await mkdir(work, { recursive: true });
  const children: Child[] = [];
  const prefix = `bench-api-${Date.now()}`;
  const rounds: Round[] = [];
  const profileDir = join(project, 'bench', 'results', 'profiles');
  const profilePath = join(profileDir, `api-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  try {
    const s3 = startChild(join(project, 'bench', 's3-child.ts'), [], { nodeArgs: tsxArgs });
    children.push(s3);
    const vela = startChild(join(project, 'bench', 'vela-child.ts'), [], { nodeArgs: tsxArgs });
    children.push(vela);
    const { endpoint, bucket } = await s3.next<{ type: string; endpoint: string; bucket: string }>('ready');
    const { url: velaUrl } = await vela.next<{ type: string; url: string }>('ready');
    const spec = {
      config: {
        redis: { url: counter?.url ?? redisServer.url, prefix },
        s3: { bucket, endpoint, forcePathStyle: true },
        vela: { url: velaUrl, token: 'bench-vela', timeout: '5s' },
        // No sweep during the rounds: it is not what is measured.
        api: { port: 0, rateLimit: 1_000_000, sweepInterval: '1h' },
        log: { level: 'info' },
      },
    };
    const specFile = join(work, 'api-spec.json');
    writeFileSync(specFile, JSON.stringify(spec));
    const api = startChild(join(project, 'bench', 'api-child.ts'), [specFile], {
      nodeArgs: tsxArgs,
      logFile: join(work, 'api.log'),
      env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' },
    });
    children.push(api);
    const { url: apiUrl } = await api.next<{ type: string; url: string }>('ready');

    const tokens = makeRedisApiTokens(redis, prefix);
    const orgs = Array.from({ length: ORGS }, (_, i) => `org-${String(i).padStart(2, '0')}`);
    const tokenOf = new Map<string, string>();
    for (const org of orgs) tokenOf.set(org, (await tokens.create(org)).token);
    const bodyOf = new Map(
      orgs.map((org) => [
        org,
        JSON.stringify({
          org_id: org,
          metadata: { email: `agent@${org}.example`, date_of_call: '2024-03-05' },
        }),
      ]),
    );
    // One keep-alive connection per concurrent client, as many as requests in a burst.
    const agent = new Agent({ connections: REQUESTS, keepAliveTimeout: 60_000 });
    // The client: one undici dispatch per request with a handler that only takes the status and
    // drops the body, so the load generator (on the same two cores) costs as little as it can.
    const origin = new URL(apiUrl);
    const one = (org: string) =>
      new Promise<{ status: string; ms: number }>((resolve) => {
        const started = performance.now();
        let status = 0;
        agent.dispatch(
          {
            origin,
            path: '/asr/async/upload/vela',
            method: 'POST',
            headers: { authorization: `Bearer ${tokenOf.get(org)}`, 'content-type': 'application/json' },
            body: bodyOf.get(org)!,
          },
          {
            onRequestStart() {},
            onResponseStart(_c, code) {
              status = code;
            },
            onResponseData() {},
            onResponseEnd() {
              resolve({ status: String(status), ms: performance.now() - started });
            },
            onResponseError(_c, err) {
              resolve({
                status: (err as { code?: string }).code ?? 'error',
                ms: performance.now() - started,
              });
            },
          },
        );
      });
    const plan = Array.from({ length: REQUESTS }, (_, i) => orgs[i % ORGS]!);
    // Warm-up, not counted: connections opened, JIT, the server's pool to Vela. A long-lived
    // service is measured warm: the first bursts after a start cost up to twice the CPU per request.
    for (let i = 0; i < WARMUP; i++) await Promise.all(plan.map((o) => one(o)));

    const velaCalls = async () => {
      vela.send({ type: 'calls' });
      return (await vela.next<{ type: string; perOrg: Record<string, number> }>('calls')).perOrg;
    };
    const pendingCount = async () => {
      const pipe = redis.pipeline();
      for (const o of orgs) pipe.hlen(stateKey(prefix, o, 'api-pending'));
      return ((await pipe.exec()) ?? []).reduce((s, [, n]) => s + Number(n ?? 0), 0);
    };
    if (values.profile) {
      api.send({ type: 'profile-start' });
      await api.next('profile-started');
    }
    for (let round = 1; round <= ROUNDS; round++) {
      const callsBefore = await velaCalls();
      const pendingBefore = await pendingCount();
      const statsBefore = await commandStats(redis);
      const writesBefore = counter?.writes() ?? 0;
      const redisBefore = await redisCpuMs(redis);
      const [serverBefore, velaBefore] = [await usage(api), await usage(vela)];
      const load = loadavg()[0]!;
      const clientBefore = process.cpuUsage();
      const t0 = performance.now();
      const results = await Promise.all(plan.map((o) => one(o)));
      const wallMs = performance.now() - t0;
      const clientCpuMs = cpuMs(process.cpuUsage(clientBefore));
      const [serverAfter, velaAfter] = [await usage(api), await usage(vela)];
      const redisAfter = await redisCpuMs(redis);
      const writes = (counter?.writes() ?? 0) - writesBefore;
      const stats = diffStats(statsBefore, await commandStats(redis));
      const callsAfter = await velaCalls();
      let mismatchedOrgs = 0;
      let calls = 0;
      for (const o of orgs) {
        const want = plan.filter((p) => p === o).length;
        const got = (callsAfter[o] ?? 0) - (callsBefore[o] ?? 0);
        calls += got;
        if (got !== want) mismatchedOrgs++;
      }
      // This process sends only INFO between the two readings, which commandStats leaves out.
      let commands = 0;
      for (const n of stats.values()) commands += n;
      const ms = results.map((r) => r.ms).sort((a, b) => a - b);
      const bad = results.filter((r) => r.status !== '200');
      const byStatus = new Map<string, number>();
      for (const r of bad) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
      rounds.push({
        round,
        errors: bad.length,
        statuses: [...byStatus].map(([s, n]) => `${n}×${s}`).join(' '),
        p50: pct(ms, 50),
        p95: pct(ms, 95),
        p99: pct(ms, 99),
        max: ms.at(-1)!,
        wallMs,
        serverCpuMs: serverAfter - serverBefore,
        velaCpuMs: velaAfter - velaBefore,
        redisCpuMs: redisAfter - redisBefore,
        clientCpuMs,
        redisCommands: commands,
        redisByName: [...stats]
          .sort((a, b) => b[1] - a[1])
          .map(([name, n]) => `${name} ${(n / REQUESTS).toFixed(2)}`)
          .join(', '),
        ...(counter && { redisWrites: writes }),
        velaCalls: calls,
        mismatchedOrgs,
        pending: (await pendingCount()) - pendingBefore,
        load,
      });
      process.stderr.write(`round ${round}: p99 ${pct(ms, 99).toFixed(1)} ms\n`);
    }
    if (values.profile) {
      api.send({ type: 'profile-stop', path: profilePath });
      await api.next('profile-stopped');
    }
    await agent.close();
    api.send({ type: 'exit' });
    await api.exited;
  } finally {
    for (const c of children.reverse()) await c.kill().catch(() => {});
    const keys = await redis.keys(`${prefix}*`).catch(() => []);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await counter?.close();
    await redisServer.stop();
    await rm(work, { recursive: true, force: true });
  }

  const perReq = (ms: number) => (ms / REQUESTS).toFixed(2);
  const rowOf = (r: Round, label = String(r.round)) => [
    label,
    `${r.errors}${r.statuses ? ` (${r.statuses})` : ''}`,
    r.p50.toFixed(1),
    r.p95.toFixed(1),
    r.p99.toFixed(1),
    r.max.toFixed(1),
    perReq(r.serverCpuMs),
    perReq(r.velaCpuMs),
    perReq(r.redisCpuMs),
    perReq(r.clientCpuMs),
    (r.redisCommands / REQUESTS).toFixed(1) +
      (r.redisWrites === undefined ? '' : ` / ${(r.redisWrites / REQUESTS).toFixed(1)}`),
    String(r.velaCalls),
    r.mismatchedOrgs ? `${r.mismatchedOrgs} orgs off` : '0',
    String(r.pending),
    r.load.toFixed(1),
  ];
  const head = [
    'round',
    'errors',
    'p50 ms',
    'p95 ms',
    'p99 ms',
    'max ms',
    'server CPU ms/req',
    'stand-in CPU ms/req',
    'Redis CPU ms/req',
    'clients CPU ms/req',
    values['count-redis'] ? 'Redis cmds / round trips per req' : 'Redis cmds/req',
    'Vela calls',
    'lost/doubled',
    'pending',
    'load avg',
  ];
  const byP99 = [...rounds].sort((a, b) => a.p99 - b.p99);
  const best = byP99[0]!;
  const mid = byP99[Math.floor((byP99.length - 1) / 2)]!;
  const cpuMedian = median(rounds.map((r) => r.serverCpuMs / REQUESTS));
  const failed = rounds.some(
    (r) => r.errors || r.mismatchedOrgs || r.pending !== REQUESTS || r.velaCalls !== REQUESTS,
  );
  const text = [
    `${REQUESTS} concurrent presign requests from ${ORGS} orgs, ${ROUNDS} rounds after ${WARMUP} warm-up bursts (target p99 <= ${TARGET_P99_MS} ms, 0 errors, one Vela call per request):`,
    '',
    table(
      head,
      rounds.map((r) => rowOf(r)),
    ),
    '',
    table(head, [rowOf(best, `best (${best.round})`), rowOf(mid, `median (${mid.round})`)]),
    '',
    `server CPU per request, median of the rounds: ${cpuMedian.toFixed(2)} ms; ` +
      `${REQUESTS} arriving at once need ${(cpuMedian * REQUESTS).toFixed(0)} ms of server CPU: ` +
      `p99 >= ${((cpuMedian * REQUESTS) / 2).toFixed(0)} ms with 2 cores to itself, ` +
      `${(cpuMedian * REQUESTS).toFixed(0)} ms with one.`,
    `Redis commands per request (median round): ${mid.redisByName}`,
    values.profile ? `profile: ${profilePath}` : '',
    failed ? 'FAILED: errors, or Vela calls lost/doubled, or pending uploads missing' : '',
  ]
    .filter((l, i, a) => l !== '' || a[i - 1] !== '')
    .join('\n');
  console.log(`\n${text}`);
  const out = join(project, 'bench', 'results', 'api-latest.md');
  await mkdir(join(project, 'bench', 'results'), { recursive: true });
  await writeFile(out, `${text}\n`);
  if (failed) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
