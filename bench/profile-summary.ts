/**
 * `npx tsx bench/profile-summary.ts FILE.cpuprofile [--per=N] [--top=N]`
 *
 * Where the CPU time of a `.cpuprofile` went: self time grouped by part (the package or source file a
 * function is in, with a few finer groups for the upload API's hot spots) and the top functions by self
 * time. `--per=N` divides every figure by N (the requests served in the profiled window) to give ms
 * per request. `--under=label=regex` (repeatable) adds the time spent under frames matching `regex`
 * (over `functionName url`), callees included, e.g. `--under=sign=SignatureV4`. `--api` sorts every
 * sample into one part of a presign request (its innermost frame that belongs to one: the socket
 * write of a Redis command is Redis's, the JSON.stringify of a policy the signature's).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    per: { type: 'string', default: '1' },
    top: { type: 'string', default: '25' },
    /** `label=regex` (over "functionName url"), several: CPU under any frame matching, callees included. */
    under: { type: 'string', multiple: true, default: [] },
    /** Attribute every sample to the innermost frame of one of the upload API's parts. */
    api: { type: 'boolean', default: false },
  },
});
const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Profile;
const per = Number(values.per);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}

/** The part of the program a frame belongs to. */
function part(n: Node): string {
  const { url, functionName } = n.callFrame;
  if (!url) return functionName.startsWith('(') ? functionName : `(native) ${functionName}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return url;
  const src = /\/((?:src|bench|test)\/.*)$/.exec(url);
  return src ? src[1]! : url;
}

const total = [...self.values()].reduce((a, b) => a + b, 0);
const parts = new Map<string, number>();
const fns = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id)!;
  const p = part(n);
  parts.set(p, (parts.get(p) ?? 0) + us);
  const f = `${n.callFrame.functionName || '(anonymous)'} ${p}:${n.callFrame.lineNumber + 1}`;
  fns.set(f, (fns.get(f) ?? 0) + us);
}
const idle = parts.get('(idle)') ?? 0;
const busy = total - idle;
const ms = (us: number) => (us / 1000 / per).toFixed(3);
const top = Number(values.top);
console.log(
  `window ${((profile.endTime - profile.startTime) / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s (idle ${(idle / 1e6).toFixed(2)} s)${per !== 1 ? `; ms per request (÷${per})` : '; ms'}`,
);
console.log('\nself time by part:');
for (const [p, us] of [...parts]
  .filter(([p]) => p !== '(idle)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)) {
  console.log(`${ms(us).padStart(9)}  ${((us / busy) * 100).toFixed(1).padStart(5)} %  ${p}`);
}
console.log('\nself time by function:');
for (const [f, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  if (f.startsWith('(idle)')) continue;
  console.log(`${ms(us).padStart(9)}  ${((us / busy) * 100).toFixed(1).padStart(5)} %  ${f}`);
}

if (values.under.length) {
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const markers = values.under.map((u) => {
    const i = u.indexOf('=');
    return { label: u.slice(0, i), re: new RegExp(u.slice(i + 1)) };
  });
  const sums = new Map(markers.map((m) => [m.label, 0]));
  for (const [id, us] of self) {
    const hit = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)!.callFrame;
      for (const m of markers) if (m.re.test(`${f.functionName} ${f.url}`)) hit.add(m.label);
    }
    for (const l of hit) sums.set(l, sums.get(l)! + us);
  }
  console.log('\nunder (callees included):');
  for (const [l, us] of sums)
    console.log(`${ms(us).padStart(9)}  ${((us / busy) * 100).toFixed(1).padStart(5)} %  ${l}`);
}

/** The parts of a presign request, tried in this order on each frame from the innermost out. */
const API_PARTS: [string, RegExp][] = [
  [
    'Redis: ioredis, token lookup, rate limit, pending record',
    /node_modules\/ioredis|adapters\/redis-api\.ts|adapters\/redis-client\.ts|node_modules\/(redis-parser|denque|cluster-key-slot)/,
  ],
  ['Vela call: undici client, answer parsing', /node_modules\/undici\/|adapters\/vela\.ts/],
  ['SigV4 signature and policy', /adapters\/s3-presign\.ts|signature-v4|adapters\/s3-multipart\.ts/],
  ['zod parsing', /node_modules\/zod|http\/api-schemas\.ts|sync\/metadata\/dates\.ts/],
  ['pino logging', /node_modules\/(pino|sonic-boom|thread-stream)/],
  ['metrics (prom-client)', /node_modules\/prom-client|src\/metrics\.ts/],
  [
    'web Request/Headers/streams (Node fetch internals)',
    /node:internal\/deps\/undici|node:internal\/webstreams/,
  ],
  ['hono routing, context, response', /node_modules\/hono\/|node_modules\/@hono\/node-server/],
  ['handler: api.ts, uploads.ts', /src\/http\/api\.ts|src\/ops\/uploads\.ts/],
  ['node:http server (parse, write)', /node:_http_|node:internal\/http/],
];

if (values.api) {
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const sums = new Map<string, number>();
  for (const [id, us] of self) {
    const own = byId.get(id)!.callFrame.functionName;
    if (own === '(idle)') continue;
    let label = own === '(garbage collector)' ? 'garbage collector' : undefined;
    for (let at: number | undefined = id; !label && at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)!.callFrame;
      label = API_PARTS.find(([, re]) => re.test(f.url))?.[0];
    }
    label ??= 'other: event loop, sockets, timers, promises';
    sums.set(label, (sums.get(label) ?? 0) + us);
  }
  console.log('\nby part of a request (innermost frame that belongs to one):');
  for (const [l, us] of [...sums].sort((a, b) => b[1] - a[1])) {
    console.log(`${ms(us).padStart(9)}  ${((us / busy) * 100).toFixed(1).padStart(5)} %  ${l}`);
  }
}
