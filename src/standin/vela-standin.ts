/**
 * A stand-in for Vela's allocation endpoint that follows Vela's contract: bearer token,
 * `{org_id, email?, date_of_call?}` in (`org_id` required; the call metadata optional, checked when
 * present), `{minute_allocation, voice_id}` out, in every answer shape the contract accepts. Used by tests, by the demo and by anyone without access to Vela.
 *
 *   POST /allocation                 the contract endpoint
 *   GET  /admin/calls                every call received (never the token)
 *   GET  /admin/allocations          the current settings
 *   PUT  /admin/allocations/:org     body: an AllocationSetting
 *   POST /admin/down                 body: {"mode": false | 503 | 429 | "refuse" | "hang"}
 *   POST /admin/reload               re-read the allocations file
 * The admin endpoints take the same bearer token and keep working while the stand-in is "down".
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';

/** The status words the contract accepts. */
export type AllocationWord = 'within' | 'ok' | 'available' | 'exceeded' | 'exhausted';

/**
 * How one org is answered. Give `minutes` (remaining minutes: > 0 is within; calls consume nothing)
 * or `status`, or both (then `status` decides and `remaining_minutes` is still reported).
 */
export interface AllocationSetting {
  minutes?: number;
  status?: AllocationWord;
  /**
   * The shape of `minute_allocation`:
   * `object` → `{status, remaining_minutes?}`, `remaining` → `{remaining_minutes}` (needs `minutes`),
   * `string` → `"within"`, `boolean` → `true`.
   * @defaultValue 'object'
   */
  shape?: 'object' | 'remaining' | 'string' | 'boolean';
  /** Answered verbatim as `voice_id`. @defaultValue 'enrolled' */
  voiceId?: string | { status: string };
}

export type DownMode = false | 503 | 429 | 'refuse' | 'hang';

export interface CallLogEntry {
  /** ISO time the call was received. */
  time: string;
  org_id?: string;
  email?: string;
  date_of_call?: string;
  /** The HTTP status answered; `null` when none was (`hang`, `refuse`). */
  status: number | null;
}

export interface VelaStandinOptions {
  token: string;
  /** @defaultValue 0 (a free port) */
  port?: number;
  /** @defaultValue '127.0.0.1' */
  host?: string;
  allocations?: Record<string, AllocationSetting>;
  /** How an org not in `allocations` is answered; without it, such an org gets a 404. */
  defaultAllocation?: AllocationSetting;
  /**
   * A JSON or YAML map of org → setting (the key `"*"` sets the default), layered over `allocations`.
   * Re-read when it changes and on `POST /admin/reload`; a reload replaces `setAllocation` changes.
   */
  file?: string;
  /** Where problems of a background reload are told. @defaultValue ignored */
  log?: (message: string) => void;
}

export interface VelaStandin {
  /** The POST endpoint, e.g. `http://127.0.0.1:PORT/allocation`. */
  url: string;
  adminUrl: string;
  port: number;
  calls(): CallLogEntry[];
  setAllocation(org: string, setting: AllocationSetting): void;
  /** `refuse` resets each allocation call's connection unanswered (admin endpoints keep working). */
  setDown(mode: DownMode): void;
  close(): Promise<void>;
}

const WITHIN_WORDS = new Set<string>(['within', 'ok', 'available']);
const WORDS = new Set<string>([...WITHIN_WORDS, 'exceeded', 'exhausted']);
const SHAPES = new Set<string>(['object', 'remaining', 'string', 'boolean']);
const MAX_BODY = 64 * 1024;

export async function startVelaStandin(opts: VelaStandinOptions): Promise<VelaStandin> {
  if (!opts.token) throw new Error('the stand-in needs a token');
  const log = opts.log ?? (() => {});
  const callLog: CallLogEntry[] = [];
  const hung = new Set<ServerResponse>();
  let down: DownMode = false;
  let allocations = new Map<string, AllocationSetting>();
  let fallback: AllocationSetting | undefined;

  function load(): void {
    const next = new Map<string, AllocationSetting>();
    let nextDefault = opts.defaultAllocation && parseSetting(opts.defaultAllocation, 'defaultAllocation');
    for (const [org, s] of Object.entries(opts.allocations ?? {})) next.set(org, parseSetting(s, org));
    if (opts.file) {
      const data: unknown = parseYaml(readFileSync(opts.file, 'utf8')); // YAML 1.2 reads JSON too
      if (data !== null && (typeof data !== 'object' || Array.isArray(data))) {
        throw new Error(`${opts.file}: expected a map of org to allocation setting`);
      }
      for (const [org, s] of Object.entries(data ?? {})) {
        if (org === '*') nextDefault = parseSetting(s, `${opts.file}: *`);
        else next.set(org, parseSetting(s, `${opts.file}: ${org}`));
      }
    }
    allocations = next;
    fallback = nextDefault;
  }
  load();

  const authorised = (req: IncomingMessage) =>
    safeEqual(req.headers.authorization ?? '', `Bearer ${opts.token}`);

  async function allocation(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const entry: CallLogEntry = { time: new Date().toISOString(), status: null };
    callLog.push(entry);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      send(res, status, body, headers);
    };
    const raw = await readBody(req);
    let body: unknown;
    try {
      body = raw === undefined ? undefined : JSON.parse(raw);
    } catch {
      body = undefined;
    }
    const fields = isRecord(body) ? body : {};
    for (const k of ['org_id', 'email', 'date_of_call'] as const) {
      const v = fields[k];
      if (v !== undefined) entry[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }

    if (down === 'hang') {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (down === 'refuse') return void req.socket.resetAndDestroy();
    if (down === 429) return answer(429, { error: 'rate limited' }, { 'retry-after': '1' });
    if (down === 503) return answer(503, { error: 'service unavailable' });
    if (!authorised(req)) return answer(401, { error: 'missing or wrong bearer token' });
    if (raw === undefined) return answer(413, { error: `body: larger than ${MAX_BODY} bytes` });
    if (!isRecord(body)) return answer(400, { error: 'body: expected a JSON object' });
    const bad = invalidField(body);
    if (bad) return answer(400, { error: bad });
    const org = body.org_id as string;
    const setting = allocations.get(org) ?? fallback;
    if (!setting) return answer(404, { error: `org_id: unknown organisation ${JSON.stringify(org)}` });
    answer(200, render(setting));
  }

  async function admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!authorised(req)) return send(res, 401, { error: 'missing or wrong bearer token' });
    const route = `${req.method} ${path}`;
    if (route === 'GET /admin/calls') return send(res, 200, callLog);
    if (route === 'GET /admin/allocations') {
      return send(res, 200, { allocations: Object.fromEntries(allocations), default: fallback ?? null });
    }
    if (route === 'POST /admin/reload') {
      if (!opts.file) return send(res, 400, { error: 'no allocations file to reload' });
      load();
      return send(res, 200, { reloaded: true });
    }
    const body = await readJson(req);
    const org = /^PUT \/admin\/allocations\/([^/]+)$/.exec(route)?.[1];
    if (org !== undefined) {
      const name = decodeURIComponent(org);
      const setting = parseSetting(body, name);
      allocations.set(name, setting);
      return send(res, 200, { org: name, setting });
    }
    if (route === 'POST /admin/down') {
      const mode = isRecord(body) ? body.mode : undefined;
      if (![false, 503, 429, 'refuse', 'hang'].includes(mode as DownMode)) {
        return send(res, 400, {
          error: `mode: expected false, 503, 429, "refuse" or "hang", got ${show(mode)}`,
        });
      }
      down = mode as DownMode;
      return send(res, 200, { mode: down });
    }
    send(res, 404, { error: `no route ${route}` });
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://standin').pathname;
    const handle =
      path === '/allocation' && req.method === 'POST'
        ? allocation(req, res)
        : path.startsWith('/admin/')
          ? admin(req, res, path)
          : Promise.resolve(
              send(res, path === '/allocation' ? 405 : 404, { error: `no route ${req.method} ${path}` }),
            );
    // A bad admin body (invalid JSON, invalid setting) is the client's mistake: 400 with the reason.
    handle.catch((err: Error) => {
      if (!res.headersSent && !res.destroyed) send(res, 400, { error: err.message });
    });
  });

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  if (opts.file) {
    watchFile(opts.file, { interval: 500 }, () => {
      try {
        load();
        log(`vela stand-in: reloaded ${opts.file}`);
      } catch (err) {
        log(`vela stand-in: kept the previous allocations, ${(err as Error).message}`);
      }
    });
  }

  let closing: Promise<void> | undefined;
  return {
    url: `${base}/allocation`,
    adminUrl: `${base}/admin`,
    port,
    calls: () => callLog.map((c) => ({ ...c })),
    setAllocation: (org, setting) => void allocations.set(org, parseSetting(setting, org)),
    setDown: (mode) => {
      down = mode;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (opts.file) unwatchFile(opts.file);
        for (const res of hung) res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** The answer for one org, in the shape its setting asks for. */
function render(s: AllocationSetting): { minute_allocation: unknown; voice_id: unknown } {
  const within = s.status !== undefined ? WITHIN_WORDS.has(s.status) : (s.minutes ?? 0) > 0;
  const word = s.status ?? (within ? 'within' : 'exceeded');
  const minutes = s.minutes !== undefined ? { remaining_minutes: s.minutes } : {};
  const minute_allocation =
    s.shape === 'string'
      ? word
      : s.shape === 'boolean'
        ? within
        : s.shape === 'remaining'
          ? minutes
          : { status: word, ...minutes };
  return { minute_allocation, voice_id: s.voiceId ?? 'enrolled' };
}

/** The first contract violation of a request body, naming the field; undefined when valid. */
function invalidField(b: Record<string, unknown>): string | undefined {
  if (typeof b.org_id !== 'string' || b.org_id.trim() === '') {
    return `org_id: expected a non-empty string, got ${show(b.org_id)}`;
  }
  // `email` and `date_of_call` are optional (the platform's metadata is), but checked when present.
  if (b.email !== undefined && (typeof b.email !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(b.email))) {
    return `email: expected an email address, got ${show(b.email)}`;
  }
  if (b.date_of_call !== undefined && (typeof b.date_of_call !== 'string' || !isRealDate(b.date_of_call))) {
    return `date_of_call: expected a date YYYY-MM-DD, got ${show(b.date_of_call)}`;
  }
  return undefined;
}

function isRealDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === s;
}

/** Validates a setting from a test, a file or the admin API; the error names the field. */
function parseSetting(v: unknown, where: string): AllocationSetting {
  const fail = (msg: string): never => {
    throw new Error(`${where}: ${msg}`);
  };
  if (!isRecord(v)) return fail(`expected an object like {"minutes": 100} or {"status": "exceeded"}`);
  for (const key of Object.keys(v)) {
    if (!['minutes', 'status', 'shape', 'voiceId'].includes(key)) fail(`${key}: unknown field`);
  }
  const { minutes, status, shape, voiceId } = v;
  if (minutes !== undefined && (typeof minutes !== 'number' || !Number.isFinite(minutes))) {
    fail(`minutes: expected a number, got ${show(minutes)}`);
  }
  if (status !== undefined && !WORDS.has(status as string)) {
    fail(`status: expected one of ${[...WORDS].join(', ')}, got ${show(status)}`);
  }
  if (minutes === undefined && status === undefined) fail('expected minutes or status');
  if (shape !== undefined && !SHAPES.has(shape as string)) {
    fail(`shape: expected one of ${[...SHAPES].join(', ')}, got ${show(shape)}`);
  }
  if (shape === 'remaining' && minutes === undefined) fail('shape: "remaining" needs minutes');
  const voiceOk =
    voiceId === undefined ||
    typeof voiceId === 'string' ||
    (isRecord(voiceId) && typeof voiceId.status === 'string');
  if (!voiceOk) fail(`voiceId: expected a string or {"status": string}, got ${show(voiceId)}`);
  return { ...(v as AllocationSetting) };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** The body as text, or undefined when it is larger than MAX_BODY. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  }
  return size > MAX_BODY ? undefined : Buffer.concat(chunks).toString('utf8');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const raw = await readBody(req);
  if (raw === undefined) throw new Error(`body: larger than ${MAX_BODY} bytes`);
  if (raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new Error('body: expected JSON');
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v));
