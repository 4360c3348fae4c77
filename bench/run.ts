/**
 * `npm run bench [-- --quick] [-- --only=small,poll,...]`: ftp-sync against `rclone copy ftp: s3:` and
 * against the pipeline's own limit, everything on loopback, set up and torn down by itself.
 * Prints the tables and writes them to bench/results/latest.md. Not part of `npm test`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os, { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Corpus,
  FULL,
  memoryCorpora,
  QUICK,
  transferCorpora,
  writeCorpora,
  writeEmptyFiles,
} from './lib/corpus.js';
import { type BenchEnv, compile, imageNodeFlags, startEnv, storeArg } from './lib/env.js';
import { runFtpSync, runLimit, runRcloneCorpus, type Sample, type Tool } from './lib/measure.js';
import { type PollResult, runPoll } from './lib/poll.js';
import { missingTools, obscure, rcloneVersion } from './lib/rclone.js';
import { fmt, limitTable, table, transferTable, type Verdict, verdicts, verdictTable } from './lib/report.js';

const project = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const only = argv
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
const want = (name: string) => !only || only.includes(name);
/** `--tools=ftp-sync`: run only these (ftp-sync, rclone, limit): a quick before/after of one tool's CPU per file. */
const toolList = argv
  .find((a) => a.startsWith('--tools='))
  ?.slice(8)
  .split(',');
const runs = (tool: string) => !toolList || toolList.includes(tool);
const rounds = Number(argv.find((a) => a.startsWith('--rounds='))?.slice(9)) || undefined;
const sizes = { ...(quick ? QUICK : FULL), ...(rounds ? { rounds } : {}) };
/** `--profile`: a CPU profile of each ftp-sync timed window, in bench/results/profiles. */
const profileDir = (_env: BenchEnv) =>
  argv.includes('--profile') ? join(project, 'bench', 'results', 'profiles') : undefined;
/**
 * `--ref=DIR`: another checkout of ftp-sync (an older commit, with its own node_modules) whose daemon
 * is measured in the same rounds as this one, alternating, as 'ftp-sync (ref)'; the targets then
 * include this build against it. How a restructuring shows it kept the figures.
 */
const refDir = argv.find((a) => a.startsWith('--ref='))?.slice(6);
/**
 * `--store=rgw`: the S3 server is Ceph's RADOS Gateway (a production-grade S3 with daemons of its own,
 * on the same cores) instead of s3rver, whose single Node process limits the small-file corpora.
 */
const store = storeArg(argv);
const storeName = store === 'rgw' ? "Ceph's RADOS Gateway" : 's3rver';
const command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
/** Node flags of the measured daemon: the Docker image's (Dockerfile ENTRYPOINT) unless given. */
const imageFlags = imageNodeFlags(project);
const nodeArgs =
  argv
    .find((a) => a.startsWith('--node-args='))
    ?.slice(12)
    .split(' ')
    .filter(Boolean) ?? imageFlags;
const started = Date.now();
const load0 = os.loadavg()[0]!.toFixed(1);
const say = (msg: string) =>
  console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}`);

async function main() {
  const missing = missingTools();
  if (missing.length) {
    console.error(`The benchmark needs these programs:\n  ${missing.join('\n  ')}`);
    process.exit(2);
  }
  process.umask(0o022); // corpus files 0644, directories 0755: vsftpd serves them to anonymous users
  say('compiling (tsc, no type check) so the measured programs run as plain node');
  const build = await compile(project);
  say(`starting redis-server, vsftpd, ${storeName} and the Vela stand-in on 127.0.0.1`);
  const refBuild = refDir ? await compile(refDir) : undefined;
  if (refDir) say(`compiled the reference checkout ${refDir}`);
  const env = await startEnv(build, { keep: argv.includes('--keep'), store, storeBytes: storeBytes() });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await env.stop();
  };
  process.on('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    await bench(env, refBuild);
  } finally {
    await stop();
  }
}

/** RGW's memstore keeps what the run writes until its garbage collection: every tool, every round. */
function storeBytes(): number {
  const tools = (refDir ? 3 : 2) + 1; // the tools, and the S3 write alone
  const corpora = [...transferCorpora(sizes), ...memoryCorpora(sizes)].filter((c) => want(c.name));
  return corpora.reduce((n, c) => n + c.bytes, 0) * tools * sizes.rounds;
}

async function bench(env: BenchEnv, refBuild: string | undefined) {
  const corpora = transferCorpora(sizes).filter((c) => want(c.name));
  const memory = want('memory') ? memoryCorpora(sizes) : [];
  say(`writing the corpora (${sizes.rounds} round${sizes.rounds > 1 ? 's' : ''})`);
  await writeCorpora(env.ftpRoot, [...corpora, ...memory]);
  if (want('poll')) await writeEmptyFiles(env.ftpRoot, 'poll', sizes.pollEntries);
  const obscuredPass = await obscure('bench@');
  const samples: Sample[] = [];

  for (let round = 1; round <= sizes.rounds; round++) {
    for (const c of corpora) {
      const connections = c.dirs.length > 1 ? sizes.tenantConnections : sizes.connections;
      const o = { round, connections, profileDir: profileDir(env), nodeArgs };
      // Alternate which tool goes first, so that neither always meets a warmer or cooler machine.
      const all: Tool[] = refBuild ? ['ftp-sync', 'ftp-sync (ref)', 'rclone'] : ['ftp-sync', 'rclone'];
      const tools = round % 2 ? all : [...all].reverse();
      for (const tool of tools.filter((t) => runs(t === 'ftp-sync (ref)' ? 'ftp-sync' : t))) {
        const s =
          tool === 'ftp-sync'
            ? await runFtpSync(env, c, o)
            : tool === 'ftp-sync (ref)' && refBuild
              ? {
                  ...(await runFtpSync({ ...env, build: refBuild }, c, {
                    ...o,
                    variant: 'ref',
                    profileDir: undefined,
                  })),
                  tool,
                }
              : await runRcloneCorpus(env, c, { ...o, obscuredPass });
        samples.push(s);
        say(
          `round ${round} ${c.name}: ${tool} ${fmt(s.wallMs / 1000)} s, CPU ${fmt(s.cpuSeconds)} s ` +
            `(${fmt((1000 * s.cpuSeconds) / s.files)} ms per file; Redis ${fmt((1000 * s.redisCpuSeconds) / s.files)} ms, ` +
            `${fmt(s.redisCommands / s.files, 1)} commands per file)`,
        );
        if (argv.includes('--verbose')) say(`  redis: ${s.redisByCommand}`);
      }
      for (const mode of runs('limit') ? (['ftp-read', 's3-write'] as const) : []) {
        const s = await runLimit(env, c, mode, o);
        samples.push(s);
        say(`round ${round} ${c.name}: ${mode} alone ${fmt(s.wallMs / 1000)} s`);
      }
    }
  }

  let pollResult: PollResult | undefined;
  if (want('poll')) {
    say(`no-change poll of ${sizes.pollEntries} entries`);
    pollResult = await runPoll(env, 'poll', 3);
  }

  // The defaults (multipart with streamed parts above 16 MiB) at each size — memory must not grow
  // with the file —, the largest size again under plain `node` (without the image's V8 flags), and
  // the smallest size with the other upload paths (see config.ts): lib-storage's buffered parallel
  // parts, and one streamed PutObject per file.
  const flagsLabel = nodeArgs.length ? ` (node ${nodeArgs.join(' ')})` : '';
  const memRuns: MemoryRun[] = [
    ...memory.map((c) => ({ corpus: c, setting: `defaults (multipart, streamed parts)${flagsLabel}` })),
    ...(nodeArgs.length
      ? memory.slice(-1).map((c) => ({
          corpus: c,
          setting: 'for comparison: plain node, no V8 flags',
          variant: 'plain',
          nodeArgs: [],
        }))
      : []),
    ...memory.slice(0, 1).flatMap((c) => [
      {
        corpus: c,
        setting: 'multipartUpload: buffer (4 parts in flight)',
        s3: { multipartUpload: 'buffer' },
        variant: 'buffer',
      },
      {
        corpus: c,
        setting: 'multipartThreshold: 5GiB (one streamed PUT)',
        s3: { multipartThreshold: '5GiB' },
        variant: 'put',
      },
    ]),
  ];
  for (const m of memRuns) {
    say(`memory: ftp-sync streaming ${m.corpus.label}, ${m.setting}`);
    const o = {
      round: 1,
      connections: sizes.connections,
      nodeArgs: m.nodeArgs ?? nodeArgs,
      s3: m.s3,
      variant: m.variant,
    };
    m.sample = await runFtpSync(env, m.corpus, o);
  }

  const report = render(corpora, samples, pollResult, memRuns, await rcloneVersion());
  console.log(`\n${report}`);
  const out = join(project, 'bench', 'results', 'latest.md');
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, report);
  // Also kept by mode, so a quick run does not hide the last full one.
  await writeFile(join(dirname(out), quick ? 'quick.md' : 'full.md'), report);
  say(`written to bench/results/latest.md (and ${quick ? 'quick' : 'full'}.md)`);
}

function startupCpu(samples: Sample[]): number {
  const xs = samples.filter((s) => s.startupCpuSeconds !== undefined).map((s) => s.startupCpuSeconds!);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}

interface MemoryRun {
  corpus: Corpus;
  setting: string;
  s3?: Record<string, unknown>;
  variant?: string;
  nodeArgs?: string[];
  sample?: Sample;
}

function render(
  corpora: Corpus[],
  samples: Sample[],
  poll: PollResult | undefined,
  mem: MemoryRun[],
  rclone: string,
): string {
  const v: Verdict[] = verdicts(samples, corpora);
  const parts: string[] = [
    `# ftp-sync benchmark${quick ? ' (quick)' : ''}`,
    '',
    `Command: \`${command}\` — ${new Date().toISOString()}, ${((Date.now() - started) / 60000).toFixed(1)} min.`,
    `Machine: ${cpus().length} CPU (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
      `node ${process.version}, ${rclone}. Everything (vsftpd, ${storeName}, redis, the tool) shares these CPUs.`,
    `Load average (1 min) at the start ${load0}, at the end ${os.loadavg()[0]!.toFixed(1)}: other work on ` +
      'the machine shows in wall times more than in CPU times.',
    '',
    `Each tool had ${sizes.connections} concurrent transfers (${sizes.tenantConnections} per tenant with 10 ` +
      `tenants; rclone: one process per tenant): ftp-sync \`maxConnections\` = that number and ` +
      '`worker.concurrency` twice it (jobs beyond the budget do their checks and wait for a session; an ' +
      'upload only runs while its job holds one); rclone `--transfers` = `--checkers` = that number with `--check-first` and its FTP ' +
      '`concurrency` one more (its minimum that cannot deadlock). "FTP sessions" is the most seen at once. ' +
      `Medians of ${sizes.rounds} round(s), tools alternating. ftp-sync is the real daemon with its default ` +
      'settings (allocation check against the Vela stand-in on, sync state, metadata) in a process of its ' +
      `own, under the Docker image's Node flags (${nodeArgs.join(' ') || 'none'}), warm (modules loaded, ` +
      'as a running daemon is); its time runs from the poll that enqueues the ' +
      'files to the last sync-state write (the earlier poll that first saw them, which the stability rule ' +
      `needs, is not timed; its process start took ${fmt(startupCpu(samples))} CPU s, not counted). CPU and ` +
      "RSS are the tool's own process(es). 'ftp-read' and 's3-write' are the pipeline's halves alone with the " +
      "same concurrency: basic-ftp downloads into nothing; ftp-sync's own S3 store uploading the same files " +
      'from the page cache (one PutObject up to 16 MiB, multipart above, as the daemon does). ' +
      (store === 'rgw'
        ? "The S3 server is Ceph's RADOS Gateway (radosgw, a monitor and a memstore OSD: its CPU is theirs)."
        : 's3rver (one Node process) is the S3 server.'),
    '',
    '## Transfers',
    '',
    transferTable(samples, corpora),
    '',
    '## Pipeline limit',
    '',
    limitTable(samples, corpora),
  ];
  if (poll) {
    const beyond = poll.pollCpuS - poll.listCpuS;
    v.push({
      what: `no-change poll of ${poll.entries} entries: daemon CPU beyond the listing`,
      value: `${fmt(beyond)} s`,
      target: '≤ 1 s',
      met: beyond <= 1,
    });
    v.push({
      what: `no-change poll of ${poll.entries} entries: Redis round trips`,
      value: String(poll.roundTrips),
      target: 'a few hundred at most',
      met: poll.roundTrips <= 300,
    });
    parts.push(
      '',
      '## No-change poll',
      '',
      table(
        [
          'entries',
          'poll s',
          'poll CPU s',
          'bare listing s',
          'listing CPU s',
          'CPU beyond listing s',
          'Redis round trips',
          'Redis commands',
        ],
        [
          [
            poll.entries,
            fmt(poll.pollMs / 1000),
            fmt(poll.pollCpuS),
            fmt(poll.listMs / 1000),
            fmt(poll.listCpuS),
            fmt(poll.pollCpuS - poll.listCpuS),
            poll.roundTrips,
            poll.commands,
          ],
        ],
      ),
      '',
      `Commands of one poll: ${poll.byCommand}. An idle daemon sends about ${poll.idleRoundTrips} ` +
        `round trips (${poll.idleCommands} commands) in the same time (BullMQ's timers), included above.`,
    );
  }
  if (mem.length) {
    const rss = (m: MemoryRun) => ((m.sample?.maxRssKiB ?? 0) * 1024) / 2 ** 20;
    // The target applies to the defaults; the other upload paths are shown for comparison.
    for (const setting of new Set(
      mem.filter((m) => m.setting.startsWith('defaults')).map((m) => m.setting),
    )) {
      const peak = Math.max(...mem.filter((m) => m.setting === setting).map(rss));
      v.push({
        what: `peak RSS, four large files at once, ${setting}`,
        value: `${fmt(peak, 0)} MiB`,
        target: '≤ 200 MB (190.7 MiB)',
        met: peak * 2 ** 20 <= 200e6,
      });
    }
    parts.push(
      '',
      '## Memory',
      '',
      table(
        ['files', 'upload', 'wall s', 'MiB/s', 'CPU s/GiB', 'peak RSS MiB'],
        mem.map((m) => [
          m.corpus.label,
          m.setting,
          fmt((m.sample?.wallMs ?? 0) / 1000),
          fmt((m.sample?.bytes ?? 0) / 2 ** 20 / ((m.sample?.wallMs ?? 0) / 1000), 1),
          fmt((m.sample?.cpuSeconds ?? 0) / ((m.sample?.bytes ?? 1) / 2 ** 30)),
          fmt(rss(m), 0),
        ]),
      ),
    );
  }
  parts.push('', '## Targets', '', verdictTable(v), '');
  return parts.join('\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
