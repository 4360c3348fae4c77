/**
 * Timeouts on every phase (issue 4): a source or store that stops answering half way never hangs a
 * worker. FTP: basic-ftp's `Client(timeout)` guards connect, login, every command's reply, the data
 * connection (a watchdog that counts only time spent waiting for the server) and the final reply of
 * a transfer — `defaults.sourceTimeout`. S3: every request's socket may be silent for at most
 * `s3.idleTimeout`, and a multipart upload as a whole is aborted when it makes no progress for as long.
 */
import { execFileSync } from 'node:child_process';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CONTROL_KEEPALIVE_MS, connectFtp } from '../src/adapters/ftp.js';
import { makeS3Client, makeS3Store, S3IdleTimeoutError } from '../src/adapters/s3.js';
import { parseConfig } from '../src/config.js';
import { PermanentError } from '../src/errors.js';
import type { SourceSession } from '../src/ports/source.js';
import { transferFile } from '../src/sync/transfer.js';
import { type TempDir, tempDir, writeFileDeep } from './support/fs.js';
import { type FtpTestServer, startFtpServer } from './support/ftp-server.js';
import { type S3TestServer, startS3 } from './support/s3.js';

const MB = 1024 * 1024;
// Generous enough that a healthy login on a loaded machine never trips it.
const TIMEOUT = 1_500;
const creds = { user: 'u', password: 'p' };

function config(port: number, s3?: { endpoint: string; bucket: string }, idleTimeout = '10s') {
  return parseConfig({
    s3: {
      bucket: s3?.bucket ?? 'calls',
      endpoint: s3?.endpoint ?? 'http://127.0.0.1:9',
      forcePathStyle: true,
      idleTimeout,
      // Files above 8 MiB go as multipart uploads (the store and transferFile must agree).
      multipartThreshold: '8MiB',
    },
    vela: { enabled: false },
    tenants: [{ org: 'acme', ftp: { host: '127.0.0.1', port, secure: false, user: 'u', password: 'p' } }],
  });
}

/** Rejects with the error `p` rejects with, and how long it took. */
async function failure(p: Promise<unknown>): Promise<{ err: Error; ms: number }> {
  const t0 = Date.now();
  try {
    await p;
  } catch (err) {
    return { err: err as Error, ms: Date.now() - t0 };
  }
  throw new Error('expected a rejection');
}

/** A sink that counts what it gets. */
function counter() {
  const c = {
    bytes: 0,
    stream: new Writable({
      write(chunk: Buffer, _e, cb) {
        c.bytes += chunk.length;
        cb();
      },
    }),
  };
  return c;
}

describe('FTP: every phase has a timeout', () => {
  let dir: TempDir;
  let ftp: FtpTestServer;
  let session: SourceSession | undefined;
  beforeAll(async () => {
    dir = await tempDir('timeouts');
    await writeFileDeep(dir.path, 'calls/a.wav', 3 * MB);
    ftp = await startFtpServer({ root: dir.path, users: { u: 'p' } });
  });
  afterEach(() => {
    session?.close();
    session = undefined;
    ftp.faults = {};
  });
  afterAll(async () => {
    await ftp.stop();
    await dir.cleanup();
  });
  const connect = () => connectFtp(config(ftp.port).tenants[0]!, creds, { timeoutMs: TIMEOUT });

  it('idle control connection: TCP keep-alive probes run on it, as a NAT gateway needs during a long transfer', async () => {
    session = await connect();
    // The kernel's own view of the client's control connection: `ss -o` shows its keep-alive timer.
    const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( dport = :${ftp.port} )`], {
      encoding: 'utf8',
    });
    expect(out).toMatch(/127\.0\.0\.1:\d+\s+127\.0\.0\.1:\d+/);
    const secs = /timer:\(keepalive,(\d+(?:\.\d+)?)(min|sec)/.exec(out);
    expect(secs, `no keep-alive timer on the control connection: ${out}`).not.toBeNull();
    const ms = Number(secs![1]) * (secs![2] === 'min' ? 60_000 : 1000);
    expect(ms).toBeLessThanOrEqual(CONTROL_KEEPALIVE_MS);
  });

  it('connect: a server that accepts the connection and never answers fails the login after the timeout', async () => {
    ftp.faults.hangAfterConnect = true;
    const { err, ms } = await failure(connect());
    expect(err.message).toMatch(/Timeout/i);
    expect(err).not.toBeInstanceOf(PermanentError); // transient: retried, the tenant is not marked broken
    expect(ms).toBeLessThan(TIMEOUT * 4);
  });

  it('login: a server that never answers PASS fails the login after the timeout', async () => {
    ftp.faults.hangOnCommand = 'PASS';
    const { err, ms } = await failure(connect());
    expect(err.message).toMatch(/Timeout/i);
    expect(err).not.toBeInstanceOf(PermanentError);
    expect(ms).toBeLessThan(TIMEOUT * 4);
  });

  it('TLS handshake: a server that agrees to AUTH TLS and then goes silent fails the login after the timeout', async () => {
    const silent = createServer((socket) => {
      socket.write('220 ready\r\n');
      socket.on('data', (d) => {
        if (/^AUTH TLS/i.test(d.toString())) socket.write('234 go ahead\r\n'); // then never a byte more
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as AddressInfo).port;
      const tenant = {
        ...config(port).tenants[0]!,
        ftp: { ...config(port).tenants[0]!.ftp!, secure: 'explicit' as const },
      };
      const { err, ms } = await failure(connectFtp(tenant, creds, { timeoutMs: TIMEOUT }));
      expect(err.message).toMatch(/Timeout/i);
      expect(err).not.toBeInstanceOf(PermanentError);
      expect(ms).toBeLessThan(TIMEOUT * 4);
    } finally {
      silent.close();
    }
  });

  it('listing: a server that never answers LIST fails the listing after the timeout; the session is dropped', async () => {
    session = await connect();
    ftp.faults.listDelayMs = 60_000;
    const { err, ms } = await failure(session.list('/calls'));
    expect(err.message).toMatch(/Timeout/i);
    expect(ms).toBeLessThan(TIMEOUT * 4);
    expect(session.healthy).toBe(false);
  });

  it('data idle: a server that stops sending half way (connection left open) fails the download after the timeout', async () => {
    session = await connect();
    ftp.faults.cutDataAfterBytes = { path: '/calls/a.wav', bytes: MB, mode: 'stall' };
    const sink = counter();
    const { err, ms } = await failure(session.download('/calls/a.wav', sink.stream));
    expect(sink.bytes).toBe(MB);
    expect(err.message).toMatch(/Timeout \(data socket\)/);
    expect(ms).toBeLessThan(TIMEOUT * 5);
    expect(session.healthy).toBe(false);
  });

  it('final reply: all data sent but no 226 — the download fails after the timeout, never resolves as success', async () => {
    session = await connect();
    ftp.faults.withholdTransferReply = '/calls/a.wav';
    const sink = counter();
    const { err, ms } = await failure(session.download('/calls/a.wav', sink.stream));
    expect(sink.bytes).toBe(3 * MB); // every byte arrived; only the server's confirmation is missing
    expect(err.message).toMatch(/Timeout/i);
    expect(ms).toBeLessThan(TIMEOUT * 5);
    expect(session.healthy).toBe(false);
  });
});

describe('S3: a store that stops answering', () => {
  let silent: Server;
  const sockets = new Set<Socket>();
  let s3: S3TestServer;
  beforeAll(async () => {
    // Accepts connections, reads everything, never answers.
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    s3 = await startS3();
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
    await s3.stop();
  });
  afterEach(() => s3.proxy.reset());

  it('HEAD and a single PUT fail after s3.idleTimeout of silence (every attempt), never hang', async () => {
    // makeS3Client reads credentials from the standard chain, as the daemon does.
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
    onTestFinished(() => {
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      else process.env.AWS_ACCESS_KEY_ID = saved.id;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
      else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    });
    const port = (silent.address() as { port: number }).port;
    const cfg = config(21, { endpoint: `http://127.0.0.1:${port}`, bucket: 'calls' }, '500ms').s3;
    const store = makeS3Store(cfg, makeS3Client(cfg));
    const head = await failure(store.head('acme/a.wav'));
    expect(head.err.name).toBe('TimeoutError');
    expect(head.ms).toBeLessThan(8_000); // 3 attempts of 0.5 s plus the SDK's backoff
    // A buffered PutObject: the same request handler, the same deadline, the same number of tries.
    const put = await failure(store.put('acme/a.wav', Buffer.alloc(1000), { size: 1000, metadata: {} }));
    expect(put.err.name).toBe('TimeoutError');
    expect(put.ms).toBeLessThan(8_000);
    store.client.destroy();
  });

  it('a multipart upload with no progress for s3.idleTimeout is aborted (S3IdleTimeoutError) and its upload aborted', async () => {
    // The test client has no socket timeout: only the upload's own watchdog can notice the stall.
    const cfg = config(21, { endpoint: s3.endpoint, bucket: s3.bucket }, '3s').s3;
    const store = makeS3Store(cfg, s3.client);
    const size = 40 * MB;
    const body = new PassThrough();
    const put = failure(store.put('acme/stall.wav', body, { size, metadata: {} }));
    body.write(Buffer.alloc(16 * MB));
    // Parts of 8 MiB: let the first ones through, then stop answering (longer than the deadline).
    const until = Date.now() + 20_000;
    while (!s3.requests().some((r) => /partNumber=/.test(r.path) && r.status === 200)) {
      if (Date.now() > until) throw new Error(`no part uploaded: ${JSON.stringify(s3.requests())}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    s3.proxy.stall(6_000);
    body.write(Buffer.alloc(24 * MB));
    body.end();
    const { err, ms } = await put;
    expect(err).toBeInstanceOf(S3IdleTimeoutError);
    expect(ms).toBeLessThan(25_000);
    const aborts = s3.requests().filter((r) => r.method === 'DELETE' && /uploadId=/.test(r.path));
    expect(aborts.length).toBeGreaterThan(0);
    expect(await store.head('acme/stall.wav')).toBeUndefined();
  });

  it('a store that is slow but moving is never cut off: uploads longer than s3.idleTimeout complete', async () => {
    // The proxy passes request bodies at 2 MiB/s; every upload takes longer than the allowed silence.
    s3.proxy.throttle(2 * MB);
    try {
      // One buffered PutObject of 6 MiB (3 s) with 1 s of allowed silence: the socket's idle timer
      // resets as the kernel takes the body's bytes.
      const direct = makeS3Store(
        config(21, { endpoint: s3.endpoint, bucket: s3.bucket }, '1s').s3,
        s3.client,
      );
      const small = Buffer.alloc(6 * MB, 7);
      const started = Date.now();
      await direct.put('acme/slow-small.wav', small, { size: small.length, metadata: {} });
      expect(Date.now() - started).toBeGreaterThan(2_000);
      // A multipart upload with streamed parts, 20 MiB (10 s) with 4 s of allowed silence: the
      // deadline resets as the parts' bytes move.
      const store = makeS3Store(config(21, { endpoint: s3.endpoint, bucket: s3.bucket }, '4s').s3, s3.client);
      const size = 20 * MB;
      const body = new PassThrough();
      const put = store.put('acme/slow-big.wav', body, { size, metadata: {} });
      body.end(Buffer.alloc(size, 9));
      await put;
      expect((await store.head('acme/slow-small.wav'))?.size).toBe(6 * MB);
      expect((await store.head('acme/slow-big.wav'))?.size).toBe(20 * MB);
    } finally {
      s3.proxy.throttle(0);
    }
  }, 60_000);

  it('a transfer whose source stalls half way leaves no object (invariant 1 under a timeout)', async () => {
    const dir = await tempDir('timeouts-transfer');
    try {
      await writeFileDeep(dir.path, 'calls/b.wav', 12 * MB);
      const ftp = await startFtpServer({ root: dir.path, users: { u: 'p' } });
      ftp.faults.cutDataAfterBytes = { path: '/calls/b.wav', bytes: 9 * MB, mode: 'stall' };
      const cfg = config(ftp.port, { endpoint: s3.endpoint, bucket: s3.bucket });
      const session = await connectFtp(cfg.tenants[0]!, creds, { timeoutMs: TIMEOUT });
      const store = makeS3Store(cfg.s3, s3.client);
      const { err } = await failure(
        transferFile({
          session,
          store,
          remotePath: '/calls/b.wav',
          path: 'calls/b.wav',
          size: 12 * MB,
          key: 'acme/calls/b.wav',
          metadata: {},
          multipartThreshold: 8 * MB,
        }),
      );
      expect(err.message).toMatch(/Timeout/);
      expect(await store.head('acme/calls/b.wav')).toBeUndefined();
      session.close();
      await ftp.stop();
    } finally {
      await dir.cleanup();
    }
  });
});
