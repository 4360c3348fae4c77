import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  makeVelaAllocationCheck,
  normaliseAllocationAnswer,
  VelaUnavailableError,
} from '../src/adapters/vela.js';
import { PermanentError } from '../src/errors.js';
import type { AllocationRequest } from '../src/ports/allocation.js';
import { type AllocationSetting, startVelaStandin, type VelaStandin } from '../src/standin/vela-standin.js';
import type { AllocationAnswer } from '../src/types.js';

const TOKEN = `tok-${randomUUID()}`;
const req = (org: string): AllocationRequest => ({
  org,
  email: 'agent@acme.example',
  dateOfCall: '2024-03-01',
});

/** Every error any check threw in this file; none may carry the token. */
const thrown: unknown[] = [];
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    thrown.push(err);
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A tiny real HTTP server for answers the contract-faithful stand-in never gives. */
async function tinyServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/allocation`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answering(status: number, body: string, headers: Record<string, string> = {}) {
  return tinyServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body);
  });
}

afterAll(() => {
  expect(thrown.length).toBeGreaterThan(10);
  for (const err of thrown) expect(inspect(err)).not.toContain(TOKEN);
});

describe('normaliseAllocationAnswer', () => {
  const ok: [string, unknown, AllocationAnswer][] = [
    [
      '"ok"',
      { minute_allocation: 'ok', voice_id: 'enrolled' },
      { allocation: 'within', voiceId: 'enrolled' },
    ],
    ['"within"', { minute_allocation: 'within', voice_id: 'x' }, { allocation: 'within', voiceId: 'x' }],
    [
      '"available"',
      { minute_allocation: 'available', voice_id: 'x' },
      { allocation: 'within', voiceId: 'x' },
    ],
    [
      '"exceeded"',
      { minute_allocation: 'exceeded', voice_id: 'x' },
      { allocation: 'exceeded', voiceId: 'x' },
    ],
    [
      '"exhausted"',
      { minute_allocation: 'exhausted', voice_id: 'x' },
      { allocation: 'exceeded', voiceId: 'x' },
    ],
    [
      '" OK " (trimmed, any case)',
      { minute_allocation: ' OK ', voice_id: 'x' },
      { allocation: 'within', voiceId: 'x' },
    ],
    [
      '"Exhausted"',
      { minute_allocation: 'Exhausted', voice_id: 'x' },
      { allocation: 'exceeded', voiceId: 'x' },
    ],
    ['true', { minute_allocation: true, voice_id: 'x' }, { allocation: 'within', voiceId: 'x' }],
    ['false', { minute_allocation: false, voice_id: 'x' }, { allocation: 'exceeded', voiceId: 'x' }],
    [
      '{status, remaining_minutes}',
      { minute_allocation: { status: 'within', remaining_minutes: 42.5 }, voice_id: 'x' },
      { allocation: 'within', remainingMinutes: 42.5, voiceId: 'x' },
    ],
    [
      '{status} alone',
      { minute_allocation: { status: 'EXCEEDED' }, voice_id: 'x' },
      { allocation: 'exceeded', voiceId: 'x' },
    ],
    [
      '{status} wins over remaining_minutes',
      { minute_allocation: { status: 'exceeded', remaining_minutes: 10 }, voice_id: 'x' },
      { allocation: 'exceeded', remainingMinutes: 10, voiceId: 'x' },
    ],
    [
      '{remaining_minutes > 0}',
      { minute_allocation: { remaining_minutes: 1 }, voice_id: 'x' },
      { allocation: 'within', remainingMinutes: 1, voiceId: 'x' },
    ],
    [
      '{remaining_minutes: 0}',
      { minute_allocation: { remaining_minutes: 0 }, voice_id: 'x' },
      { allocation: 'exceeded', remainingMinutes: 0, voiceId: 'x' },
    ],
    [
      '{remaining_minutes < 0}',
      { minute_allocation: { remaining_minutes: -3 }, voice_id: 'x' },
      { allocation: 'exceeded', remainingMinutes: -3, voiceId: 'x' },
    ],
    [
      'voice_id object',
      { minute_allocation: 'ok', voice_id: { status: ' pending ' } },
      { allocation: 'within', voiceId: 'pending' },
    ],
  ];
  it.each(ok)('normalises minute_allocation %s', (_name, body, expected) => {
    expect(normaliseAllocationAnswer('acme', body)).toEqual(expected);
  });

  const bad: [string, unknown, string][] = [
    [
      'an unknown status string',
      { minute_allocation: 'maybe', voice_id: 'x' },
      'minute_allocation: unknown status "maybe"',
    ],
    [
      'an empty status string',
      { minute_allocation: '  ', voice_id: 'x' },
      'minute_allocation: unknown status "  "',
    ],
    [
      'an unknown object status',
      { minute_allocation: { status: 'partial' }, voice_id: 'x' },
      'minute_allocation.status: unknown status "partial"',
    ],
    [
      'a non-numeric remaining_minutes',
      { minute_allocation: { remaining_minutes: '10' }, voice_id: 'x' },
      'minute_allocation.remaining_minutes: expected a number, got "10"',
    ],
    [
      'an object with neither field',
      { minute_allocation: {}, voice_id: 'x' },
      'minute_allocation: object without status or remaining_minutes',
    ],
    ['a number', { minute_allocation: 5, voice_id: 'x' }, 'minute_allocation: unexpected value 5'],
    ['a missing minute_allocation', { voice_id: 'x' }, 'minute_allocation: missing'],
    ['a missing voice_id', { minute_allocation: 'ok' }, 'voice_id: missing'],
    [
      'a numeric voice_id',
      { minute_allocation: 'ok', voice_id: 7 },
      'voice_id: expected a status string, got 7',
    ],
    [
      'a voice_id object without status',
      { minute_allocation: 'ok', voice_id: {} },
      'voice_id.status: missing',
    ],
    ['an array', [1], 'expected a JSON object, got [1]'],
    ['null', null, 'expected a JSON object, got null'],
  ];
  it.each(bad)('rejects %s as a PermanentError quoting the field and value', (_name, body, message) => {
    const call = () => normaliseAllocationAnswer('acme', body);
    expect(call).toThrow(PermanentError);
    expect(call).toThrow(`vela answer for org "acme": ${message}`);
  });
});

describe('vela allocation check against the stand-in', () => {
  let standin: VelaStandin;
  const check = (timeoutMs = 5000) => makeVelaAllocationCheck({ url: standin.url, token: TOKEN, timeoutMs });

  beforeAll(async () => {
    standin = await startVelaStandin({
      token: TOKEN,
      allocations: {
        acme: { minutes: 120 },
        zero: { minutes: 0 },
      },
    });
  });
  afterEach(() => standin.setDown(false));
  afterAll(async () => {
    await standin.close();
  });

  const forms: [string, AllocationSetting, AllocationAnswer][] = [
    [
      'object with minutes left',
      { minutes: 120 },
      { allocation: 'within', remainingMinutes: 120, voiceId: 'enrolled' },
    ],
    [
      'object with no minutes left',
      { minutes: 0 },
      { allocation: 'exceeded', remainingMinutes: 0, voiceId: 'enrolled' },
    ],
    ['object with status only', { status: 'exhausted' }, { allocation: 'exceeded', voiceId: 'enrolled' }],
    [
      'remaining_minutes only',
      { minutes: 7, shape: 'remaining' },
      { allocation: 'within', remainingMinutes: 7, voiceId: 'enrolled' },
    ],
    [
      'remaining_minutes 0 only',
      { minutes: 0, shape: 'remaining' },
      { allocation: 'exceeded', remainingMinutes: 0, voiceId: 'enrolled' },
    ],
    ['string "ok"', { status: 'ok', shape: 'string' }, { allocation: 'within', voiceId: 'enrolled' }],
    ['string "within"', { status: 'within', shape: 'string' }, { allocation: 'within', voiceId: 'enrolled' }],
    [
      'string "available"',
      { status: 'available', shape: 'string' },
      { allocation: 'within', voiceId: 'enrolled' },
    ],
    [
      'string "exceeded"',
      { status: 'exceeded', shape: 'string' },
      { allocation: 'exceeded', voiceId: 'enrolled' },
    ],
    [
      'string "exhausted"',
      { status: 'exhausted', shape: 'string' },
      { allocation: 'exceeded', voiceId: 'enrolled' },
    ],
    ['string from minutes', { minutes: 3, shape: 'string' }, { allocation: 'within', voiceId: 'enrolled' }],
    ['boolean true', { minutes: 3, shape: 'boolean' }, { allocation: 'within', voiceId: 'enrolled' }],
    [
      'boolean false',
      { status: 'exceeded', shape: 'boolean' },
      { allocation: 'exceeded', voiceId: 'enrolled' },
    ],
    [
      'voice_id string',
      { minutes: 1, voiceId: 'not-enrolled' },
      { allocation: 'within', remainingMinutes: 1, voiceId: 'not-enrolled' },
    ],
    [
      'voice_id object',
      { minutes: 1, voiceId: { status: 'pending' } },
      { allocation: 'within', remainingMinutes: 1, voiceId: 'pending' },
    ],
  ];
  it.each(forms)('normalises an answer in the form: %s', async (name, setting, expected) => {
    const org = `form-${name.replace(/\W+/g, '-')}`;
    standin.setAllocation(org, setting);
    expect(await check().check(req(org))).toEqual(expected);
  });

  it('sends org_id, email and date_of_call with the bearer token, and the stand-in records the call', async () => {
    const before = standin.calls().length;
    await check().check({ org: 'acme', email: 'jo@acme.example', dateOfCall: '2024-02-29' });
    const calls = standin.calls().slice(before);
    expect(calls).toEqual([
      {
        time: expect.any(String),
        org_id: 'acme',
        email: 'jo@acme.example',
        date_of_call: '2024-02-29',
        status: 200,
      },
    ]);
  });

  it('reports an exhausted org as exceeded, and as within once setAllocation gives it minutes', async () => {
    standin.setAllocation('switch', { status: 'exceeded' });
    expect((await check().check(req('switch'))).allocation).toBe('exceeded');
    standin.setAllocation('switch', { minutes: 30 });
    expect(await check().check(req('switch'))).toMatchObject({ allocation: 'within', remainingMinutes: 30 });
  });

  it('turns a 429 into VelaUnavailableError with retryAfterMs from Retry-After', async () => {
    standin.setDown(429);
    const err = await rejection(check().check(req('acme')));
    expect(err).toBeInstanceOf(VelaUnavailableError);
    expect(err).not.toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ status: 429, retryAfterMs: 1000, org: 'acme' });
    expect(err.message).toBe(
      'vela unavailable for org "acme": HTTP 429 Too Many Requests (retry after 1000ms)',
    );
  });

  it('turns a 503 into VelaUnavailableError', async () => {
    standin.setDown(503);
    const err = await rejection(check().check(req('acme')));
    expect(err).toBeInstanceOf(VelaUnavailableError);
    expect(err).toMatchObject({ status: 503, retryAfterMs: undefined });
    expect(err.message).toContain('org "acme": HTTP 503');
  });

  it('turns a hanging Vela into VelaUnavailableError after timeoutMs', async () => {
    standin.setDown('hang');
    const started = Date.now();
    const err = await rejection(check(200).check(req('acme')));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err).toBeInstanceOf(VelaUnavailableError);
    expect(err.message).toBe('vela unavailable for org "acme": timed out after 200ms');
    expect(standin.calls().at(-1)).toMatchObject({ org_id: 'acme', status: null });
  });

  it('turns a reset connection (stand-in "refuse") into VelaUnavailableError naming the error code', async () => {
    standin.setDown('refuse');
    const err = await rejection(check().check(req('acme')));
    expect(err).toBeInstanceOf(VelaUnavailableError);
    expect((err as VelaUnavailableError).code).toMatch(/^(ECONNRESET|UND_ERR_SOCKET|EPIPE)$/);
    expect(err.message).toContain((err as VelaUnavailableError).code);
  });

  it('reads at most 64 KiB of an answer: a larger one is not JSON to it (PermanentError), and the next check still works', async () => {
    let calls = 0;
    const big = await tinyServer((_req, res) => {
      calls++;
      res.writeHead(200, { 'content-type': 'application/json' });
      if (calls === 1) {
        // An endless answer: only the cap ends the read.
        const chunk = Buffer.alloc(16 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      } else res.end('{"minute_allocation":"within","voice_id":"enrolled"}');
    });
    try {
      const vela = makeVelaAllocationCheck({ url: big.url, token: TOKEN, timeoutMs: 5000 });
      const err = await rejection(vela.check(req('acme')));
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toContain('larger than 65536 bytes');
      expect(await vela.check(req('acme'))).toMatchObject({ allocation: 'within' });
    } finally {
      await big.close();
    }
  });

  it('the timeout covers the answer body: headers at once and a body that never ends is unavailable after timeoutMs', async () => {
    const trickle = await tinyServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"minute_allocation":');
    });
    try {
      const started = Date.now();
      const vela = makeVelaAllocationCheck({ url: trickle.url, token: TOKEN, timeoutMs: 300 });
      const err = await rejection(vela.check(req('acme')));
      expect(err).toBeInstanceOf(VelaUnavailableError);
      expect(err.message).toBe('vela unavailable for org "acme": timed out after 300ms');
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await trickle.close();
    }
  });

  it('turns a refused connection into VelaUnavailableError with code ECONNREFUSED', async () => {
    const closed = await tinyServer(() => {});
    await closed.close();
    const refused = makeVelaAllocationCheck({ url: closed.url, token: TOKEN, timeoutMs: 2000 });
    const err = await rejection(refused.check(req('acme')));
    expect(err).toBeInstanceOf(VelaUnavailableError);
    expect(err).toMatchObject({ code: 'ECONNREFUSED' });
    expect(err.message).toMatch(/^vela unavailable for org "acme": ECONNREFUSED \(.*ECONNREFUSED.*\)$/);
  });

  it('rethrows the caller’s abort as is, not as VelaUnavailableError', async () => {
    standin.setDown('hang');
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('shutting down')), 50);
    const err = await rejection(check(5000).check(req('acme'), ac.signal));
    expect(err).not.toBeInstanceOf(VelaUnavailableError);
    expect(err.message).toBe('shutting down');
  });

  it('turns a wrong token (401) into a PermanentError naming the org and the status, never the token', async () => {
    const wrong = `wrong-${TOKEN}`;
    const err = await rejection(
      makeVelaAllocationCheck({ url: standin.url, token: wrong, timeoutMs: 5000 }).check(req('acme')),
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/^vela rejected org "acme": HTTP 401 Unauthorized \(check vela.token\): /);
    expect(inspect(err)).not.toContain(wrong);
    expect(standin.calls().at(-1)).toMatchObject({ org_id: 'acme', status: 401 });
  });

  it('turns an unknown org (404) into a PermanentError naming the org and the status', async () => {
    const err = await rejection(check().check(req('nobody')));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe(
      'vela rejected org "nobody": HTTP 404 Not Found: {"error":"org_id: unknown organisation \\"nobody\\""}',
    );
  });

  it('turns a 403 into a PermanentError with at most 200 chars of the body, scrubbed of the token', async () => {
    // A server that echoes the request's Authorization header back: the token must still not leak.
    const echo = await tinyServer((r, res) => {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end(`denied for ${r.headers.authorization} ${'x'.repeat(500)}`);
    });
    try {
      const err = await rejection(
        makeVelaAllocationCheck({ url: echo.url, token: TOKEN, timeoutMs: 5000 }).check(req('acme')),
      );
      expect(err).toBeInstanceOf(PermanentError);
      const prefix = 'vela rejected org "acme": HTTP 403 Forbidden: ';
      expect(err.message.startsWith(`${prefix}denied for Bearer [redacted] xxx`)).toBe(true);
      expect(err.message.length).toBe(prefix.length + 200);
      expect(err.message).not.toContain(TOKEN);
    } finally {
      await echo.close();
    }
  });

  it('turns an unknown status string into a PermanentError quoting the field and value', async () => {
    const maybe = await answering(200, JSON.stringify({ minute_allocation: 'maybe', voice_id: 'enrolled' }));
    try {
      const err = await rejection(
        makeVelaAllocationCheck({ url: maybe.url, token: TOKEN, timeoutMs: 5000 }).check(req('acme')),
      );
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toBe('vela answer for org "acme": minute_allocation: unknown status "maybe"');
    } finally {
      await maybe.close();
    }
  });

  it('turns a 2xx answer that is not JSON into a PermanentError', async () => {
    const html = await answering(200, '<html>maintenance</html>', { 'content-type': 'text/html' });
    try {
      const err = await rejection(
        makeVelaAllocationCheck({ url: html.url, token: TOKEN, timeoutMs: 5000 }).check(req('acme')),
      );
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toMatch(
        /^vela answer for org "acme": not JSON \(HTTP 200, content-type text\/html, /,
      );
      expect(err.message).toContain('"<html>maintenance</html>"');
    } finally {
      await html.close();
    }
  });

  it('turns a 2xx answer without voice_id into a PermanentError naming the field', async () => {
    const noVoice = await answering(200, JSON.stringify({ minute_allocation: 'ok' }));
    try {
      const err = await rejection(
        makeVelaAllocationCheck({ url: noVoice.url, token: TOKEN, timeoutMs: 5000 }).check(req('acme')),
      );
      expect(err.message).toBe('vela answer for org "acme": voice_id: missing');
    } finally {
      await noVoice.close();
    }
  });

  it('does not follow a redirect (the token could go with it): PermanentError naming the target', async () => {
    const moved = await answering(308, '', { location: 'http://127.0.0.1:1/elsewhere' });
    try {
      const err = await rejection(
        makeVelaAllocationCheck({ url: moved.url, token: TOKEN, timeoutMs: 5000 }).check(req('acme')),
      );
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toContain('HTTP 308 Permanent Redirect (redirect to http://127.0.0.1:1/elsewhere');
    } finally {
      await moved.close();
    }
  });

  it('treats 500 and a Retry-After date as transient with a computed retryAfterMs', async () => {
    const at = new Date(Date.now() + 60_000).toUTCString();
    const broken = await answering(500, '{}', { 'retry-after': at });
    try {
      const err = await rejection(
        makeVelaAllocationCheck({ url: broken.url, token: TOKEN, timeoutMs: 5000 }).check(req('acme')),
      );
      expect(err).toBeInstanceOf(VelaUnavailableError);
      const { retryAfterMs } = err as VelaUnavailableError;
      expect(retryAfterMs).toBeGreaterThan(50_000);
      expect(retryAfterMs).toBeLessThanOrEqual(60_000);
    } finally {
      await broken.close();
    }
  });

  it('reports every check to onCall, and an onCall that throws or rejects cannot break a check', async () => {
    const seen: { org: string; outcome: string; ms: number }[] = [];
    const observed = makeVelaAllocationCheck({
      url: standin.url,
      token: TOKEN,
      timeoutMs: 5000,
      onCall: (o) => seen.push(o),
    });
    await observed.check(req('acme'));
    await observed.check(req('zero'));
    await rejection(observed.check(req('nobody')));
    standin.setDown(503);
    await rejection(observed.check(req('acme')));
    expect(seen.map((o) => [o.org, o.outcome])).toEqual([
      ['acme', 'within'],
      ['zero', 'exceeded'],
      ['nobody', 'rejected'],
      ['acme', 'unavailable'],
    ]);
    expect(seen.every((o) => o.ms >= 0)).toBe(true);
    standin.setDown(false);

    const throwing = makeVelaAllocationCheck({
      url: standin.url,
      token: TOKEN,
      timeoutMs: 5000,
      onCall: () => {
        throw new Error('metrics broke');
      },
    });
    expect((await throwing.check(req('acme'))).allocation).toBe('within');
    const rejecting = makeVelaAllocationCheck({
      url: standin.url,
      token: TOKEN,
      timeoutMs: 5000,
      onCall: (async () => {
        throw new Error('metrics broke');
      }) as () => void,
    });
    expect((await rejecting.check(req('acme'))).allocation).toBe('within');
  });

  it('never keeps the token in the call log', () => {
    expect(standin.calls().length).toBeGreaterThan(5);
    expect(JSON.stringify(standin.calls())).not.toContain(TOKEN);
  });
});

describe('vela stand-in', () => {
  let standin: VelaStandin;
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  const post = (body: unknown, headers: Record<string, string> = auth) =>
    fetch(standin.url, { method: 'POST', headers, body: JSON.stringify(body) });
  const valid = { org_id: 'acme', email: 'a@b.example', date_of_call: '2024-01-31' };

  beforeAll(async () => {
    standin = await startVelaStandin({ token: TOKEN, allocations: { acme: { minutes: 5 } } });
  });
  afterAll(() => standin.close());

  it('answers 401 with a JSON error to a missing or wrong token, and records the call', async () => {
    const missing = await post(valid, { 'content-type': 'application/json' });
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({ error: 'missing or wrong bearer token' });
    const wrong = await post(valid, { ...auth, authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect(
      standin
        .calls()
        .slice(-2)
        .map((c) => c.status),
    ).toEqual([401, 401]);
  });

  it.each([
    [{ ...valid, org_id: '' }, 'org_id'],
    [{ ...valid, org_id: 3 }, 'org_id'],
    [{ ...valid, email: 'no-at-sign' }, 'email'],
    [{ ...valid, date_of_call: '2024-02-30' }, 'date_of_call'],
    [{ ...valid, date_of_call: '01/02/2024' }, 'date_of_call'],
    [{ org_id: 'acme', email: 3 }, 'email'],
    [{ email: 'a@b.example' }, 'org_id'],
  ])('answers 400 naming the bad field for %j', async (body, field) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(new RegExp(`^${field}: `));
  });

  it('accepts a check without email or date_of_call, as Vela does (metadata is optional)', async () => {
    for (const body of [{ org_id: 'acme' }, { org_id: 'acme', email: 'a@b.example' }]) {
      const res = await post(body);
      expect(res.status).toBe(200);
    }
    expect(
      standin
        .calls()
        .slice(-2)
        .map((c) => [c.org_id, c.email, c.date_of_call]),
    ).toEqual([
      ['acme', undefined, undefined],
      ['acme', 'a@b.example', undefined],
    ]);
  });

  it('answers an unknown org with 404, or with defaultAllocation when one is set', async () => {
    expect((await post({ ...valid, org_id: 'ghost' })).status).toBe(404);
    const withDefault = await startVelaStandin({ token: TOKEN, defaultAllocation: { status: 'exceeded' } });
    try {
      const res = await fetch(withDefault.url, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ ...valid, org_id: 'ghost' }),
      });
      expect(await res.json()).toEqual({ minute_allocation: { status: 'exceeded' }, voice_id: 'enrolled' });
    } finally {
      await withDefault.close();
    }
  });

  it('serves token-protected admin endpoints: allocations, calls, down', async () => {
    const admin = (method: string, path: string, body?: unknown, headers: Record<string, string> = auth) =>
      fetch(`${standin.adminUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });

    expect((await admin('GET', '/calls', undefined, {})).status).toBe(401);
    expect((await admin('PUT', '/allocations/beta', { status: 'exhausted', shape: 'string' })).status).toBe(
      200,
    );
    const bad = await admin('PUT', '/allocations/beta', { minute: 3 });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'beta: minute: unknown field' });

    const answer = await post({ ...valid, org_id: 'beta' });
    expect(await answer.json()).toEqual({ minute_allocation: 'exhausted', voice_id: 'enrolled' });
    expect(await (await admin('GET', '/allocations')).json()).toMatchObject({
      allocations: { acme: { minutes: 5 }, beta: { status: 'exhausted', shape: 'string' } },
    });

    const calls = (await (await admin('GET', '/calls')).json()) as { org_id: string; status: number }[];
    expect(calls.at(-1)).toMatchObject({ org_id: 'beta', status: 200 });

    expect((await admin('POST', '/down', { mode: 'sideways' })).status).toBe(400);
    expect((await admin('POST', '/down', { mode: 503 })).status).toBe(200);
    expect((await post(valid)).status).toBe(503);
    expect((await admin('POST', '/down', { mode: false })).status).toBe(200);
    expect((await post(valid)).status).toBe(200);
  });

  it('reads allocations from a JSON or YAML file and re-reads it on POST /admin/reload', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vela-standin-'));
    const file = join(dir, 'allocations.yaml');
    await writeFile(file, 'acme: { minutes: 10 }\n"*": { status: exceeded, shape: boolean }\n');
    const fromFile = await startVelaStandin({ token: TOKEN, file });
    const ask = (org: string) =>
      makeVelaAllocationCheck({ url: fromFile.url, token: TOKEN, timeoutMs: 5000 }).check(req(org));
    try {
      expect(await ask('acme')).toMatchObject({ allocation: 'within', remainingMinutes: 10 });
      expect((await ask('anyone')).allocation).toBe('exceeded');

      await writeFile(file, JSON.stringify({ acme: { minutes: 0 } }));
      const reload = await fetch(`${fromFile.adminUrl}/reload`, { method: 'POST', headers: auth });
      expect(reload.status).toBe(200);
      expect(await ask('acme')).toMatchObject({ allocation: 'exceeded', remainingMinutes: 0 });
      expect(await rejection(ask('anyone'))).toBeInstanceOf(PermanentError);

      await writeFile(file, JSON.stringify({ acme: { minutes: 'lots' } }));
      const broken = await fetch(`${fromFile.adminUrl}/reload`, { method: 'POST', headers: auth });
      expect(broken.status).toBe(400);
      expect(((await broken.json()) as { error: string }).error).toContain(
        'acme: minutes: expected a number',
      );
      expect((await ask('acme')).allocation).toBe('exceeded');
    } finally {
      await fromFile.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
