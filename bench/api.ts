/**
 * `npm run bench:api [-- --requests=200 --orgs=20 --rounds=5]`
 *
 * The upload API under a burst: `requests` presign requests at once, spread over `orgs` orgs (each
 * with its own token), against the api role with a real Redis, s3rver (credentials only: a presign
 * makes no S3 request) and the Vela stand-in, all on 127.0.0.1. Reports per round the latency
 * percentiles seen by the clients, the errors, and the Vela calls counted at the stand-in per org
 * (each must equal that org's requests: none lost, none doubled) and the pending uploads recorded.
 * The clients run in the same process as the server, so latencies include their share of the one
 * event loop (a conservative figure). Target: p99 ≤ 50 ms, 0 errors.
 *
 * Needs redis-server on PATH (or REDIS_URL). Not part of any test suite.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { makeRedisApiTokens, makeRedisPendingUploads } from '../src/adapters/redis-api.js';
import { makeS3Store } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { makeLogger } from '../src/log.js';
import { startDaemon } from '../src/main.js';
import { startVelaStandin } from '../src/standin/vela-standin.js';
import { startRedis } from '../test/support/redis.js';
import { startS3 } from '../test/support/s3.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '200' },
    orgs: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '5' },
  },
});
const REQUESTS = Number(values.requests);
const ORGS = Number(values.orgs);
const ROUNDS = Number(values.rounds);

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function main() {
  const external = process.env.REDIS_URL;
  const server = external ? undefined : await startRedis();
  const redisUrl = external ?? server!.url;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const s3 = await startS3();
  const vela = await startVelaStandin({ token: 'bench-vela', defaultAllocation: { status: 'within' } });
  const prefix = `bench-api-${Date.now()}`;
  const config = parseConfig(
    {
      redis: { url: redisUrl, prefix },
      s3: { bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true },
      vela: { url: vela.url, token: 'bench-vela', timeout: '5s' },
      api: { port: 0, rateLimit: 1_000_000 },
      log: { level: 'warn' },
    },
    {},
  );
  const daemon = await startDaemon(config, {
    role: 'api',
    log: makeLogger({ level: 'warn' }),
    store: makeS3Store(config.s3, s3.client),
    s3Credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  const rows: string[][] = [
    [
      'round',
      'requests',
      'errors',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'max ms',
      'vela calls',
      'lost/doubled',
      'pending',
    ],
  ];
  let failed = false;
  try {
    const tokens = makeRedisApiTokens(redis, prefix);
    const orgs = Array.from({ length: ORGS }, (_, i) => `org-${String(i).padStart(2, '0')}`);
    const tokenOf = new Map<string, string>();
    for (const org of orgs) tokenOf.set(org, (await tokens.create(org)).token);
    const url = `${daemon.api!.url}/asr/async/upload/vela`;
    const one = async (org: string) => {
      const started = performance.now();
      const res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenOf.get(org)}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          org_id: org,
          metadata: { email: `agent@${org}.example`, date_of_call: '2024-03-05' },
        }),
      });
      await res.arrayBuffer();
      return { ok: res.status === 200, ms: performance.now() - started };
    };
    // Warm-up: connections, JIT, the Vela pool.
    await Promise.all(orgs.map((o) => one(o)));
    const pending = makeRedisPendingUploads(redis, prefix);
    for (let round = 1; round <= ROUNDS; round++) {
      const before = new Map(orgs.map((o) => [o, vela.calls().filter((c) => c.org_id === o).length]));
      const pendingBefore = (await Promise.all(orgs.map((o) => pending.list(o)))).flat().length;
      const plan = Array.from({ length: REQUESTS }, (_, i) => orgs[i % ORGS]!);
      const results = await Promise.all(plan.map((o) => one(o)));
      const ms = results.map((r) => r.ms).sort((a, b) => a - b);
      const errors = results.filter((r) => !r.ok).length;
      const calls = vela.calls();
      let mismatched = 0;
      for (const o of orgs) {
        const want = plan.filter((p) => p === o).length;
        const got = calls.filter((c) => c.org_id === o).length - before.get(o)!;
        if (got !== want) mismatched++;
      }
      const callsThisRound = orgs.reduce(
        (n, o) => n + calls.filter((c) => c.org_id === o).length - before.get(o)!,
        0,
      );
      const pendingNow = (await Promise.all(orgs.map((o) => pending.list(o)))).flat().length - pendingBefore;
      if (errors || mismatched || pendingNow !== REQUESTS || pct(ms, 99) > 50) failed = true;
      rows.push([
        String(round),
        String(REQUESTS),
        String(errors),
        pct(ms, 50).toFixed(1),
        pct(ms, 95).toFixed(1),
        pct(ms, 99).toFixed(1),
        ms.at(-1)!.toFixed(1),
        String(callsThisRound),
        mismatched ? `${mismatched} orgs off` : '0',
        String(pendingNow),
      ]);
    }
  } finally {
    await daemon.close();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await Promise.allSettled([s3.stop(), vela.close(), server?.stop()]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(
    `\n${REQUESTS} concurrent presign requests from ${ORGS} orgs, ${ROUNDS} rounds (target p99 <= 50 ms, 0 errors):\n`,
  );
  console.log(
    [line(rows[0]!), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n'),
  );
  if (failed) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
