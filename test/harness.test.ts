import { Writable } from 'node:stream';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Client, FTPError } from 'basic-ftp';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisUrl, uniquePrefix } from './support/env.js';
import { sha256, type TempDir, tempDir, type WrittenFile, writeFileDeep } from './support/fs.js';
import { type FtpTestServer, startFtpServer } from './support/ftp-server.js';
import { describeNeeding, missing } from './support/needs.js';
import { startRedis } from './support/redis.js';
import { getObjectBuffer, listAll, type S3TestServer, s3Client, startS3 } from './support/s3.js';
import { startVsftpd, type VsftpdServer } from './support/vsftpd.js';

/** A Writable that keeps what it gets and remembers whether it was ended. */
function sink() {
  const chunks: Buffer[] = [];
  let ended = false;
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
    final(cb) {
      ended = true;
      cb();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks), ended: () => ended };
}

async function ftpClient(host: string, port: number, user: string, password: string, timeout = 10_000) {
  const client = new Client(timeout);
  await client.access({ host, port, user, password });
  return client;
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('redis', () => {
  it('answers on the URL global setup provided', async () => {
    const redis = new Redis(redisUrl(), { lazyConnect: true });
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
    await redis.quit();
  });

  it('makes unique prefixes of safe characters only', () => {
    const a = uniquePrefix('some test: ä/b');
    expect(a).toMatch(/^t-[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(uniquePrefix('some test: ä/b'));
  });

  it('starts, restarts empty by default and keeps data with wipe: false', async () => {
    const server = await startRedis();
    const redis = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
    try {
      await redis.set('k', 'v');
      await server.restart({ wipe: false });
      expect(await redis.get('k')).toBe('v');
      await server.restart();
      expect(await redis.get('k')).toBeNull();
      expect(await redis.ping()).toBe('PONG');
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});

describe('ftp-srv', () => {
  let dir: TempDir;
  let server: FtpTestServer;
  let big: WrittenFile;

  beforeAll(async () => {
    dir = await tempDir('ftp-srv');
    await writeFileDeep(dir.path, 'a.txt', 'hello');
    big = await writeFileDeep(dir.path, 'calls/big.wav', 2_000_000);
    server = await startFtpServer({ root: dir.path });
  });
  afterAll(async () => {
    await server?.stop();
    await dir?.cleanup();
  });

  const login = (timeout?: number) => ftpClient(server.host, server.port, 'test', 'secret', timeout);

  it('accepts the right password and answers 530 to a wrong one', async () => {
    const ok = await login();
    expect(server.logins()).toBe(1);
    ok.close();
    const err = await errorOf(ftpClient(server.host, server.port, 'test', 'wrong'));
    expect(err).toBeInstanceOf(FTPError);
    expect((err as FTPError).code).toBe(530);
    server.setPassword('test', 'changed');
    (await ftpClient(server.host, server.port, 'test', 'changed')).close();
    server.setPassword('test', 'secret');
    await expect.poll(() => server.logins()).toBe(0);
  });

  it('lists and downloads files (LIST is unix style in UTC; FEAT has no MLSD)', async () => {
    const client = await login();
    try {
      const root = await client.list('/');
      expect(root.map((f) => [f.name, f.isDirectory]).sort()).toEqual([
        ['a.txt', false],
        ['calls', true],
      ]);
      const calls = await client.list('/calls');
      expect(calls.map((f) => [f.name, f.size])).toEqual([['big.wav', big.size]]);
      expect([...(await client.features()).keys()]).not.toContain('MLSD');
      const out = sink();
      await client.downloadTo(out.stream, '/calls/big.wav');
      expect(sha256(out.bytes())).toBe(big.sha256);
    } finally {
      client.close();
    }
  });

  it('cutDataAfterBytes abort: downloadTo rejects, after ending the destination with the first bytes', async () => {
    server.faults.cutDataAfterBytes = { path: /big\.wav$/, bytes: 100_000 };
    const client = await login();
    try {
      const out = sink();
      const err = await errorOf(client.downloadTo(out.stream, 'calls/big.wav'));
      expect((err as FTPError).code).toBe(551);
      // basic-ftp ends the destination even on failure: piped into an upload this would look complete.
      expect(out.ended()).toBe(true);
      expect(out.bytes().length).toBe(100_000);
    } finally {
      delete server.faults.cutDataAfterBytes;
      client.close();
    }
  });

  it('cutDataAfterBytes truncate: downloadTo resolves with fewer bytes than listed', async () => {
    server.faults.cutDataAfterBytes = { path: '/calls/big.wav', bytes: 70_000, mode: 'truncate' };
    const client = await login();
    try {
      const out = sink();
      await client.downloadTo(out.stream, 'calls/big.wav');
      expect(out.ended()).toBe(true);
      expect(out.bytes().length).toBe(70_000);
    } finally {
      delete server.faults.cutDataAfterBytes;
      client.close();
    }
  });

  it('failRetr answers 550 and the session stays usable', async () => {
    server.faults.failRetr = { path: /a\.txt$/ };
    const client = await login();
    try {
      const err = await errorOf(client.downloadTo(sink().stream, 'a.txt'));
      expect((err as FTPError).code).toBe(550);
      delete server.faults.failRetr;
      const out = sink();
      await client.downloadTo(out.stream, 'a.txt');
      expect(out.bytes().toString()).toBe('hello');
    } finally {
      delete server.faults.failRetr;
      client.close();
    }
  });

  it('commandDelayMs answers every command that much later, in order (a far server)', async () => {
    const client = await login();
    try {
      const quick = performance.now();
      await client.send('NOOP');
      const near = performance.now() - quick;
      server.faults.commandDelayMs = 150;
      const t0 = performance.now();
      await client.send('NOOP');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(145);
      // A download is two commands (EPSV, RETR): two round trips, and the bytes still arrive whole.
      const t1 = performance.now();
      const out = sink();
      await client.downloadTo(out.stream, 'a.txt');
      expect(performance.now() - t1).toBeGreaterThanOrEqual(290);
      expect(out.bytes().toString()).toBe('hello');
      expect(near).toBeLessThan(145);
    } finally {
      delete server.faults.commandDelayMs;
      client.close();
    }
  });

  it('maxLogins refuses the login beyond the limit with 421 and counts sessions', async () => {
    await expect.poll(() => server.logins()).toBe(0);
    server.faults.maxLogins = 2;
    const clients: Client[] = [];
    try {
      clients.push(await login(), await login());
      expect(server.logins()).toBe(2);
      const err = await errorOf(login());
      expect((err as FTPError).code).toBe(421);
      expect(server.refusedLogins()).toBeGreaterThanOrEqual(1);
      expect(server.maxConcurrentLogins()).toBeGreaterThanOrEqual(2);
    } finally {
      delete server.faults.maxLogins;
      for (const c of clients) c.close();
    }
    await expect.poll(() => server.logins()).toBe(0);
  });

  it('hangAfterConnect never sends the banner', async () => {
    server.faults.hangAfterConnect = true;
    try {
      await expect(login(300)).rejects.toThrow(/timeout/i);
    } finally {
      delete server.faults.hangAfterConnect;
    }
    (await login()).close();
  });

  it('survives clients that vanish mid-transfer', async () => {
    const client = await login();
    const slow = new Writable({
      write(_chunk, _enc, cb) {
        setTimeout(cb, 5);
      },
    });
    const download = client.downloadTo(slow, 'calls/big.wav').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    client.close();
    await download;
    const again = await login();
    expect((await again.list('/')).length).toBe(2);
    again.close();
  });
});

/*
 * vsftpd LIST lines look like `-rw-r--r--    1 0        0          5 Nov 23 18:48 a.txt` (UTC because
 * use_localtime=NO, no seconds, no year when recent): basic-ftp gives `rawModifiedAt` only, no
 * `modifiedAt`. FEAT lists EPRT EPSV MDTM PASV REST STREAM SIZE TVFS: no MLSD.
 */
describeNeeding(missing.vsftpd(), 'vsftpd', () => {
  let dir: TempDir;
  let server: VsftpdServer;
  let file: WrittenFile;

  beforeAll(async () => {
    dir = await tempDir('vsftpd-root');
    await writeFileDeep(dir.path, 'a.txt', 'hello');
    file = await writeFileDeep(dir.path, 'calls/2024/rec.wav', 300_000);
    server = await startVsftpd({ root: dir.path });
  });
  afterAll(async () => {
    await server?.stop();
    await dir?.cleanup();
  });

  it('logs in anonymously, lists with sizes and downloads', async () => {
    const client = await ftpClient(server.host, server.port, server.user, server.password);
    try {
      const features = await client.features();
      expect(features.has('MLSD')).toBe(false);
      expect(features.has('MDTM')).toBe(true);
      const root = await client.list('/');
      expect(root.map((f) => [f.name, f.isDirectory]).sort()).toEqual([
        ['a.txt', false],
        ['calls', true],
      ]);
      expect(root.find((f) => f.name === 'a.txt')?.size).toBe(5);
      const listed = await client.list('/calls/2024');
      expect(listed.map((f) => [f.name, f.size])).toEqual([['rec.wav', file.size]]);
      expect(listed[0]?.rawModifiedAt).toMatch(/^[A-Z][a-z]{2} [ \d]\d ( \d{4}|\d\d:\d\d)$/);
      const out = sink();
      await client.downloadTo(out.stream, '/calls/2024/rec.wav');
      expect(sha256(out.bytes())).toBe(file.sha256);
    } finally {
      client.close();
    }
  });

  it('refuses connections beyond maxPerIp with 421', async () => {
    const limited = await startVsftpd({ root: dir.path, maxPerIp: 1 });
    let first: Client | undefined;
    try {
      first = await ftpClient(limited.host, limited.port, limited.user, limited.password);
      const err = await errorOf(ftpClient(limited.host, limited.port, limited.user, limited.password));
      expect((err as FTPError).code).toBe(421);
    } finally {
      first?.close();
      await limited.stop();
    }
  });
});

describe('s3', () => {
  let s3: S3TestServer;
  beforeAll(async () => {
    s3 = await startS3();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('round-trips user metadata through PutObject and HeadObject, logging both', async () => {
    const metadata = { org: 'acme', 'source-size': '5', 'source-mtime': '2024-05-01T10:00:00Z' };
    const key = 'acme/a.txt';
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: 'hello', Metadata: metadata }),
    );
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    expect(head.Metadata).toEqual(metadata);
    expect(head.ContentLength).toBe(5);
    expect((await getObjectBuffer(s3.directClient, s3.bucket, key)).toString()).toBe('hello');
    expect(s3.requests().map(({ method, path, status }) => ({ method, path, status }))).toEqual([
      { method: 'PUT', path: `/${s3.bucket}/${key}?x-id=PutObject`, status: 200 },
      { method: 'HEAD', path: `/${s3.bucket}/${key}`, status: 200 },
    ]);
  });

  it('takes a 40 MB multipart upload from lib-storage through the proxy', async () => {
    const body = Buffer.alloc(40 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
    const before = s3.requests().length;
    const upload = new Upload({
      client: s3.client,
      params: { Bucket: s3.bucket, Key: 'acme/big.wav', Body: body, Metadata: { org: 'acme' } },
      partSize: 8 * 1024 * 1024,
      queueSize: 2,
    });
    await upload.done();
    const made = s3.requests().slice(before);
    expect(made.filter((r) => r.method === 'PUT' && r.path.includes('partNumber='))).toHaveLength(5);
    expect(made.every((r) => r.status === 200)).toBe(true);
    const stored = await getObjectBuffer(s3.directClient, s3.bucket, 'acme/big.wav');
    expect(sha256(stored)).toBe(sha256(body));
    const head = await s3.directClient.send(
      new HeadObjectCommand({ Bucket: s3.bucket, Key: 'acme/big.wav' }),
    );
    expect(head.Metadata).toEqual({ org: 'acme' });
    expect((await listAll(s3.directClient, s3.bucket, 'acme/')).map((o) => o.key)).toEqual([
      'acme/a.txt',
      'acme/big.wav',
    ]);
  });

  it('failNext(1) fails one request with 503 SlowDown and the SDK retry succeeds', async () => {
    const before = s3.requests().length;
    s3.proxy.failNext(1);
    const res = await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: 'acme/r.txt', Body: 'r' }),
    );
    expect(res.$metadata.attempts).toBe(2);
    expect(
      s3
        .requests()
        .slice(before)
        .map(({ method, path, status }) => ({ method, path, status })),
    ).toEqual([
      { method: 'PUT', path: `/${s3.bucket}/acme/r.txt?x-id=PutObject`, status: 503 },
      { method: 'PUT', path: `/${s3.bucket}/acme/r.txt?x-id=PutObject`, status: 200 },
    ]);
  });

  it('failFor and down make requests fail until the time is up', async () => {
    const single = s3Client(s3.endpoint, { maxAttempts: 1 });
    const put = new PutObjectCommand({ Bucket: s3.bucket, Key: 'acme/d.txt', Body: 'd' });
    try {
      s3.proxy.failFor(200, 500);
      await expect(single.send(put)).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
      await new Promise((r) => setTimeout(r, 250));
      await expect(single.send(put)).resolves.toBeDefined();
      s3.proxy.down(200);
      await expect(single.send(put)).rejects.toThrow();
      await new Promise((r) => setTimeout(r, 250));
      await expect(single.send(put)).resolves.toBeDefined();
    } finally {
      s3.proxy.reset();
      single.destroy();
    }
  });

  it('answers AbortMultipartUpload itself, so a failed Upload reports the part error, not 405', async () => {
    const client = s3Client(s3.endpoint, { maxAttempts: 1 });
    const before = s3.requests().length;
    try {
      const upload = new Upload({
        client,
        params: { Bucket: s3.bucket, Key: 'acme/aborted.wav', Body: Buffer.alloc(15 * 1024 * 1024) },
        partSize: 5 * 1024 * 1024,
        queueSize: 1,
      });
      // After part 1, the next request (part 2) fails; Upload then sends AbortMultipartUpload.
      upload.on('httpUploadProgress', (p) => {
        if (p.part === 1) s3.proxy.failNext(1, 500);
      });
      await expect(upload.done()).rejects.toMatchObject({ name: 'InternalError' });
    } finally {
      s3.proxy.reset();
      client.destroy();
    }
    const made = s3.requests().slice(before);
    expect(made.map((r) => `${r.method} ${r.status}`)).toEqual([
      'POST 200',
      'PUT 200',
      'PUT 500',
      'DELETE 204',
    ]);
    expect(await listAll(s3.directClient, s3.bucket, 'acme/aborted')).toEqual([]);
  });
});
