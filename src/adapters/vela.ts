/**
 * The Vela allocation check over HTTP (the contract is in the README, "Call metadata and manifests", and docs/invariants.md).
 *
 * Error mapping, the whole retry decision for this port:
 * - 429, 408, 5xx, timeouts and network failures → `VelaUnavailableError` (transient: retried with backoff);
 * - any other non-2xx (401, 403, 404, a redirect, …) → `PermanentError`: the tenant is misconfigured;
 * - a 2xx answer that is not JSON or has an unknown `minute_allocation`/`voice_id` → `PermanentError`
 *   naming the field and the value.
 * The caller's own abort (shutdown) is rethrown as is: it is neither Vela's fault nor the tenant's.
 *
 * The bearer token never appears in an error message: every text that may carry it (a response body
 * echoing the request, a quoted value) is scrubbed before it goes into a message.
 */
import { PermanentError, toError } from '../errors.js';
import type { AllocationCheck, AllocationRequest } from '../ports/allocation.js';
import type { AllocationAnswer, AllocationStatus } from '../types.js';
import { type HttpReply, makePoster, PostTimeoutError } from './vela-http.js';

/** Vela could not answer now (429, 5xx, timeout, network). Retrying later may succeed. */
export class VelaUnavailableError extends Error {
  override name = 'VelaUnavailableError';
  readonly org: string;
  /** The HTTP status Vela answered, when it answered. */
  readonly status?: number;
  /** The network error code (`ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`, …) when it did not. */
  readonly code?: string;
  /** From a `Retry-After` header: how long Vela asked us to wait. */
  readonly retryAfterMs?: number;

  constructor(
    message: string,
    details: { org: string; status?: number; code?: string; retryAfterMs?: number },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.org = details.org;
    if (details.status !== undefined) this.status = details.status;
    if (details.code !== undefined) this.code = details.code;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
  }
}

export type VelaCallOutcome = AllocationStatus | 'unavailable' | 'rejected' | 'invalid' | 'aborted';

export interface VelaOptions {
  /** The allocation endpoint, `vela.url`. */
  url: string;
  /** The bearer token, `vela.token`. Never logged, never in an error. */
  token: string;
  /** Time allowed for the whole exchange, body included (`vela.timeout`). */
  timeoutMs: number;
  /** Side channel for metrics; called once per check. Whatever it does, it cannot fail the check. */
  onCall?: (o: { org: string; outcome: VelaCallOutcome; ms: number }) => void;
}

/** A 2xx answer is a few hundred bytes; anything this large is not an answer. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** How much of an error body goes into a message. */
const BODY_EXCERPT_CHARS = 200;

const WITHIN = new Set(['ok', 'within', 'available']);
const EXCEEDED = new Set(['exceeded', 'exhausted']);

export function makeVelaAllocationCheck(opts: VelaOptions): AllocationCheck {
  const post = makePoster(opts.url);
  const scrub = makeScrubber(opts.token);
  const report = safeSideChannel(opts.onCall);

  async function exchange(
    req: AllocationRequest,
    signal: AbortSignal | undefined,
    call: { outcome: VelaCallOutcome },
  ): Promise<AllocationAnswer> {
    const org = req.org;
    let res: HttpReply;
    try {
      res = await post({
        headers: {
          authorization: `Bearer ${opts.token}`,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: velaBody(req),
        timeoutMs: opts.timeoutMs,
        signal,
        // A transient answer's body is not read; an error's only for its first lines.
        maxBytes: (status) => (ok(status) ? MAX_ANSWER_BYTES : isTransientStatus(status) ? 0 : 4096),
      });
    } catch (err) {
      if (signal?.aborted) throw toError(signal.reason);
      if (err instanceof PostTimeoutError) {
        throw new VelaUnavailableError(
          `vela unavailable for org ${JSON.stringify(org)}: timed out after ${opts.timeoutMs}ms`,
          { org, code: 'ETIMEDOUT' },
          { cause: err },
        );
      }
      const code = errorCode(err);
      const detail = scrub(deepestMessage(err));
      throw new VelaUnavailableError(
        `vela unavailable for org ${JSON.stringify(org)}: ${code ?? 'network error'} (${detail})`,
        { org, ...(code !== undefined && { code }) },
        { cause: err },
      );
    }
    if (!ok(res.status) && isTransientStatus(res.status)) {
      const retryAfterMs = parseRetryAfter(header(res, 'retry-after'));
      const wait = retryAfterMs === undefined ? '' : ` (retry after ${retryAfterMs}ms)`;
      throw new VelaUnavailableError(
        `vela unavailable for org ${JSON.stringify(org)}: HTTP ${statusLine(res)}${wait}`,
        { org, status: res.status, ...(retryAfterMs !== undefined && { retryAfterMs }) },
      );
    }

    if (!ok(res.status)) {
      call.outcome = 'rejected';
      const excerpt = scrub(res.text).replace(/\s+/g, ' ').trim().slice(0, BODY_EXCERPT_CHARS);
      const hint =
        res.status === 401
          ? ' (check vela.token)'
          : res.status >= 300 && res.status < 400
            ? redirectHint(res)
            : '';
      throw new PermanentError(
        `vela rejected org ${JSON.stringify(org)}: HTTP ${statusLine(res)}${hint}${excerpt ? `: ${excerpt}` : ''}`,
      );
    }

    let body: unknown;
    try {
      if (res.truncated) throw new Error(`larger than ${MAX_ANSWER_BYTES} bytes`);
      body = JSON.parse(res.text);
    } catch (err) {
      const type = header(res, 'content-type') ?? 'none';
      const excerpt = scrub(res.text).slice(0, BODY_EXCERPT_CHARS);
      throw new PermanentError(
        `vela answer for org ${JSON.stringify(org)}: not JSON (HTTP ${res.status}, content-type ${type}, ${
          (err as Error).message
        }): ${JSON.stringify(excerpt)}`,
      );
    }
    try {
      return normaliseAllocationAnswer(org, body);
    } catch (err) {
      throw new PermanentError(scrub((err as Error).message));
    }
  }

  return {
    async check(req, signal) {
      const started = performance.now();
      const call: { outcome: VelaCallOutcome } = { outcome: 'invalid' };
      try {
        const answer = await exchange(req, signal, call);
        call.outcome = answer.allocation;
        return answer;
      } catch (err) {
        if (err instanceof VelaUnavailableError) call.outcome = 'unavailable';
        else if (signal?.aborted) call.outcome = 'aborted';
        throw err;
      } finally {
        report({ org: req.org, outcome: call.outcome, ms: performance.now() - started });
      }
    },
  };
}

/**
 * Turns a parsed 2xx answer into an `AllocationAnswer`, or throws a `PermanentError` quoting the
 * field and the value it could not understand.
 */
export function normaliseAllocationAnswer(org: string, body: unknown): AllocationAnswer {
  const fail = (what: string): never => {
    throw new PermanentError(`vela answer for org ${JSON.stringify(org)}: ${what}`);
  };
  if (!isRecord(body)) return fail(`expected a JSON object, got ${describe(body)}`);

  const word = (field: string, value: unknown): AllocationStatus => {
    if (typeof value !== 'string') return fail(`${field}: expected a status string, got ${describe(value)}`);
    const w = value.trim().toLowerCase();
    if (WITHIN.has(w)) return 'within';
    if (EXCEEDED.has(w)) return 'exceeded';
    return fail(`${field}: unknown status ${JSON.stringify(value)}`);
  };

  const ma = body.minute_allocation;
  let allocation: AllocationStatus;
  let remainingMinutes: number | undefined;
  if (typeof ma === 'string') allocation = word('minute_allocation', ma);
  else if (typeof ma === 'boolean') allocation = ma ? 'within' : 'exceeded';
  else if (isRecord(ma)) {
    const rm = ma.remaining_minutes;
    if (rm !== undefined && rm !== null) {
      if (typeof rm !== 'number' || !Number.isFinite(rm)) {
        fail(`minute_allocation.remaining_minutes: expected a number, got ${describe(rm)}`);
      }
      remainingMinutes = rm as number;
    }
    if (ma.status !== undefined && ma.status !== null)
      allocation = word('minute_allocation.status', ma.status);
    else if (remainingMinutes !== undefined) allocation = remainingMinutes > 0 ? 'within' : 'exceeded';
    else return fail(`minute_allocation: object without status or remaining_minutes: ${describe(ma)}`);
  } else if (ma === undefined || ma === null) return fail(`minute_allocation: missing`);
  else return fail(`minute_allocation: unexpected value ${describe(ma)}`);

  const vi = body.voice_id;
  const voiceRaw = isRecord(vi) ? vi.status : vi;
  const voiceField = isRecord(vi) ? 'voice_id.status' : 'voice_id';
  if (voiceRaw === undefined || voiceRaw === null) return fail(`${voiceField}: missing`);
  if (typeof voiceRaw !== 'string' || voiceRaw.trim() === '') {
    return fail(`${voiceField}: expected a status string, got ${describe(voiceRaw)}`);
  }

  return {
    allocation,
    ...(remainingMinutes !== undefined && { remainingMinutes }),
    voiceId: voiceRaw.trim(),
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value as it appears in a message: JSON, cut short. */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

function isTransientStatus(status: number): boolean {
  // 408 is the server saying *it* timed out: as transient as our own timeout.
  return status === 429 || status === 408 || status >= 500;
}

const ok = (status: number) => status >= 200 && status < 300;

function header(res: HttpReply, name: string): string | null {
  const v = res.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
}

function statusLine(res: HttpReply): string {
  return res.statusText ? `${res.status} ${res.statusText}` : String(res.status);
}

function redirectHint(res: HttpReply): string {
  const to = header(res, 'location');
  return ` (redirect${to ? ` to ${to}` : ''}; set vela.url to the final address)`;
}

/** `Retry-After` is either delta-seconds or an HTTP date. */
function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The first `code` string along an error's cause chain (undici puts it on `cause`, sometimes deeper). */
function errorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** `fetch failed` says nothing; the innermost cause says what happened. */
function deepestMessage(err: unknown): string {
  let msg = toError(err).message;
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const m = (e as { message?: unknown }).message;
    if (typeof m === 'string' && m) msg = m;
  }
  return msg;
}

function makeScrubber(token: string): (s: string) => string {
  if (!token) return (s) => s;
  const forms = [...new Set([token, JSON.stringify(token).slice(1, -1), encodeURIComponent(token)])];
  return (s) => forms.reduce((acc, f) => acc.split(f).join('[redacted]'), s);
}

/** A side channel must never break a check: neither by throwing nor by rejecting. */
function safeSideChannel<T>(fn: ((o: T) => void) | undefined): (o: T) => void {
  return (o) => {
    if (!fn) return;
    try {
      const r = fn(o) as unknown;
      if (r && typeof (r as PromiseLike<unknown>).then === 'function') {
        (r as Promise<unknown>).then(undefined, () => {});
      }
    } catch {
      // deliberately ignored: metrics are not worth a failed check
    }
  };
}

/**
 * The request body Vela receives: `org_id` always, `email` and `date_of_call` only when known
 * (the platform's API takes metadata as optional; an absent field is never sent as null or "").
 */
function velaBody(req: AllocationRequest): string {
  return JSON.stringify({
    org_id: req.org,
    ...(req.email !== undefined && { email: req.email }),
    ...(req.dateOfCall !== undefined && { date_of_call: req.dateOfCall }),
  });
}
