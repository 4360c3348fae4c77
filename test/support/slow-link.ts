/**
 * A thin link to a far server, made on this machine: a network namespace of the test's own, joined to
 * the host by a veth pair with a /30 of 10.0.0.0/8 that exists only on these two interfaces, and both
 * directions shaped by a token-bucket qdisc (`tc … tbf`; this kernel has no netem, so no added latency
 * or loss). A server started inside (`ip netns exec`, see vsftpd.ts `netns`) is reached from the host
 * at `nsAddress` through the shaped link.
 *
 * Needs root (CAP_NET_ADMIN) and iproute2. `slowLinkProblem()` says why not when it cannot be made;
 * tests skip with that reason, and fail under CI=true (`requireSlowLink`).
 *
 * Cleanup: `close()` deletes the namespace and the veth pair; an exit handler does the same if a test
 * run dies first, and `makeSlowLink` removes namespaces left by processes that no longer exist.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { exists } from './proc.js';

const run = promisify(execFile);
const NS_PREFIX = 'ftpsync-far-';

export interface SlowLink {
  /** The namespace's name, for `ip netns exec`. */
  readonly netns: string;
  /** The host end of the veth pair. */
  readonly hostAddress: string;
  /** The namespace end: where a server inside listens. */
  readonly nsAddress: string;
  /** Bytes per second in each direction. */
  readonly rate: number;
  /**
   * Bytes the host received over the link so far (the server's data and replies, with their TCP/IP
   * headers: ~3-4 % above the payload).
   */
  bytesIn(): number;
  /** Shapes both directions to `bytesPerSecond` (replacing the previous rate). */
  setRate(bytesPerSecond: number): Promise<void>;
  /** Deletes the namespace and the veth pair. Safe to call twice. */
  close(): Promise<void>;
}

let probed: Promise<string | undefined> | undefined;

/** Why a slow link cannot be made here, or undefined when it can (probed once per process). */
export function slowLinkProblem(): Promise<string | undefined> {
  probed ??= probe();
  return probed;
}

async function probe(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces and tc need root (CAP_NET_ADMIN)';
  try {
    const link = await makeSlowLink({ bytesPerSecond: 1024 * 1024 });
    await link.close();
    return undefined;
  } catch (err) {
    return `cannot make a shaped network namespace (ip netns / veth / tc tbf): ${(err as Error).message.split('\n')[0]}`;
  }
}

/**
 * For a test that needs a slow link: undefined when one can be made; otherwise the reason — the
 * caller skips with it — or, under CI=true, throws it (a test that cannot run must fail there).
 */
export async function requireSlowLink(): Promise<string | undefined> {
  const why = await slowLinkProblem();
  if (why && process.env.CI === 'true') {
    throw new Error(`slow-link tests cannot run: ${why} (.ci/run installs iproute2 and runs as root)`);
  }
  if (why) console.warn(`SKIPPED slow-link tests: ${why}`);
  return why;
}

const live = new Set<string>();
let exitHook = false;

function deleteSync(ns: string, hostIf: string) {
  for (const args of [
    ['link', 'del', hostIf],
    ['netns', 'del', ns],
  ]) {
    try {
      execFileSync('ip', args, { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}

/** Namespaces of ours whose creating process is gone (a test run killed before its cleanup). */
async function sweepOrphans() {
  const { stdout } = await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }));
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-([0-9a-f]+)$`).exec(name);
    if (m && !exists(Number(m[1]))) deleteSync(name, `fsf${m[2]}`);
  }
}

async function ip(...args: string[]) {
  await run('ip', args);
}

async function shape(netns: string | undefined, dev: string, bytesPerSecond: number) {
  // burst: at least one MTU and ~20 ms worth; latency bounds the queue (packets beyond it are
  // dropped, and TCP backs off to the rate).
  const burst = Math.max(3000, Math.round(bytesPerSecond / 50));
  const tc = ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${Math.round(bytesPerSecond * 8)}bit`];
  const cmd = [...tc, 'burst', String(burst), 'latency', '200ms'];
  await run(netns ? 'ip' : 'tc', netns ? ['netns', 'exec', netns, 'tc', ...cmd] : cmd);
}

/** Makes a namespace joined to the host by a link of `bytesPerSecond` each way. */
export async function makeSlowLink(opts: { bytesPerSecond: number }): Promise<SlowLink> {
  await sweepOrphans();
  const id = randomBytes(3).toString('hex');
  const netns = `${NS_PREFIX}${process.pid}-${id}`;
  const hostIf = `fsf${id}`; // interface names: at most 15 characters
  const nsIf = `fsf${id}n`;
  // A random /30 in 10.200.0.0–10.249.255.255: parallel test files pick different ones.
  const base = `10.${200 + randomInt(50)}.${randomInt(256)}`;
  const sub = randomInt(64) * 4;
  const hostAddress = `${base}.${sub + 1}`;
  const nsAddress = `${base}.${sub + 2}`;
  live.add(netns);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const ns of live) deleteSync(ns, `fsf${ns.split('-').pop()}`);
    });
  }
  let rate = opts.bytesPerSecond;
  const close = async () => {
    if (!live.delete(netns)) return;
    deleteSync(netns, hostIf);
  };
  try {
    await ip('netns', 'add', netns);
    await ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    await ip('link', 'set', nsIf, 'netns', netns);
    await ip('addr', 'add', `${hostAddress}/30`, 'dev', hostIf);
    await ip('link', 'set', hostIf, 'up');
    await ip('netns', 'exec', netns, 'ip', 'addr', 'add', `${nsAddress}/30`, 'dev', nsIf);
    await ip('netns', 'exec', netns, 'ip', 'link', 'set', nsIf, 'up');
    await ip('netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up');
    await shape(undefined, hostIf, rate);
    await shape(netns, nsIf, rate);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    netns,
    hostAddress,
    nsAddress,
    get rate() {
      return rate;
    },
    async setRate(bytesPerSecond) {
      rate = bytesPerSecond;
      await shape(undefined, hostIf, rate);
      await shape(netns, nsIf, rate);
    },
    bytesIn() {
      return Number(readFileSync(`/sys/class/net/${hostIf}/statistics/rx_bytes`, 'utf8'));
    },
    close,
  };
}
