/**
 * One conformance suite for the `ObjectStore` port: the S3 adapter (against s3rver) and the
 * in-memory fake must both pass it, so that tests written against the fake hold for S3. A second
 * builder checks an adapter's resilience through a fault proxy (retries, Retry-After, clock skew,
 * region redirects), for adapters that talk to a server.
 */
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '../../src/ports/object-store.js';
import type { FaultProxy, S3Request } from '../support/s3.js';

export interface ObjectStoreFixture {
  store: ObjectStore;
  /**
   * Entries per page of the store's own listing: the suite lists more than one page. Undefined when
   * the server cannot page (the suite then lists fewer entries than one page).
   */
  listPageSize: number | undefined;
  /**
   * Keys of the multipart uploads open under `prefix`, as the store lists them; absent when it cannot
   * (s3rver answers 501, the fake has none). With it, the suite checks a failed upload was aborted.
   */
  openUploads?(prefix: string): Promise<string[]>;
  /**
   * The store checks a body against the SHA-256 it was signed with (`PutOptions.sha256`): S3 and RGW
   * do, s3rver does not.
   */
  checksPayloadHash?: boolean;
  stop(): Promise<void>;
}

export interface ObjectStoreFaultFixture {
  store: ObjectStore;
  proxy: FaultProxy;
  /** Every request the proxy saw, in order. */
  requests(): S3Request[];
  stop(): Promise<void>;
}

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** A stream of `body` in chunks of 64 KiB. */
const streamOf = (body: Buffer) =>
  Readable.from(
    (function* () {
      for (let at = 0; at < body.length; at += 64 * 1024) yield body.subarray(at, at + 64 * 1024);
    })(),
  );

export function describeObjectStoreConformance(name: string, setup: () => Promise<ObjectStoreFixture>) {
  describe(`ObjectStore conformance: ${name}`, () => {
    let fx: ObjectStoreFixture;
    beforeAll(async () => {
      fx = await setup();
    });
    afterAll(async () => {
      await fx?.stop();
    });

    it('a buffer: head (size, metadata in lower case, content type), get, delete', async () => {
      const body = randomBytes(50 * 1024);
      await fx.store.put('acme/buf.wav', body, {
        size: body.length,
        metadata: { 'source-path': 'calls/buf.wav', org: 'acme' },
        contentType: 'audio/wav',
      });
      const head = await fx.store.head('acme/buf.wav');
      expect(head).toMatchObject({
        size: body.length,
        metadata: { 'source-path': 'calls/buf.wav', org: 'acme' },
        contentType: 'audio/wav',
      });
      expect(sha256(await readAll(await fx.store.get('acme/buf.wav')))).toBe(sha256(body));
      await fx.store.delete('acme/buf.wav');
      expect(await fx.store.head('acme/buf.wav')).toBeUndefined();
    });

    it('a buffer with its SHA-256 given (PutOptions.sha256): stored intact; a wrong one, where the store checks it, is refused and leaves no object', async () => {
      const body = randomBytes(40 * 1024);
      await fx.store.put('acme/hashed.wav', body, {
        size: body.length,
        metadata: { org: 'acme' },
        sha256: sha256(body),
      });
      expect(sha256(await readAll(await fx.store.get('acme/hashed.wav')))).toBe(sha256(body));
      expect((await fx.store.head('acme/hashed.wav'))?.metadata).toMatchObject({ org: 'acme' });
      if (!fx.checksPayloadHash) return;
      const other = randomBytes(40 * 1024);
      await expect(
        fx.store.put('acme/wrong-hash.wav', body, { size: body.length, metadata: {}, sha256: sha256(other) }),
      ).rejects.toThrow();
      expect(await fx.store.head('acme/wrong-hash.wav')).toBeUndefined();
    });

    it('getRange: exactly the bytes asked for, anywhere in the object, in one request', async () => {
      const body = randomBytes(3 * MiB + 17);
      await fx.store.put('acme/range.zip', streamOf(body), { size: body.length, metadata: {} });
      for (const [start, end] of [
        // (not [0, 1]: s3rver 3.7 reads `bytes=0-0` as the whole object; a zip never needs it)
        [0, 2],
        [0, 22],
        [1000, 1000 + 64 * 1024],
        [2 * MiB - 5, 3 * MiB + 3],
        [body.length - 22, body.length],
      ] as const) {
        const got = await readAll(await fx.store.getRange('acme/range.zip', start, end));
        expect(got.length).toBe(end - start);
        expect(sha256(got)).toBe(sha256(body.subarray(start, end)));
      }
      await fx.store.delete('acme/range.zip');
    });

    it('a missing object: head is undefined, delete is not an error', async () => {
      expect(await fx.store.head('acme/missing.wav')).toBeUndefined();
      await expect(fx.store.delete('acme/missing.wav')).resolves.toBeUndefined();
    });

    it('a zero-byte object', async () => {
      await fx.store.put('acme/empty.csv', Buffer.alloc(0), { size: 0, metadata: {} });
      expect((await fx.store.head('acme/empty.csv'))?.size).toBe(0);
      expect((await readAll(await fx.store.get('acme/empty.csv'))).length).toBe(0);
    });

    it('a stream as one PutObject (singlePut), with progress', async () => {
      const body = randomBytes(300_001);
      const seen: number[] = [];
      await fx.store.put('acme/single.wav', streamOf(body), {
        size: body.length,
        metadata: { org: 'acme' },
        contentType: 'audio/wav',
        singlePut: true,
        onProgress: (n) => seen.push(n),
      });
      expect(await fx.store.head('acme/single.wav')).toMatchObject({
        size: body.length,
        contentType: 'audio/wav',
      });
      expect(sha256(await readAll(await fx.store.get('acme/single.wav')))).toBe(sha256(body));
      expect(seen.at(-1)).toBe(body.length);
    });

    it('a stream of multipart size: the object whole, its metadata and content type kept', async () => {
      const body = randomBytes(17 * MiB + 123);
      await fx.store.put('acme/big.wav', streamOf(body), {
        size: body.length,
        metadata: { org: 'acme' },
        contentType: 'audio/wav',
      });
      expect(await fx.store.head('acme/big.wav')).toMatchObject({
        size: body.length,
        metadata: { org: 'acme' },
        contentType: 'audio/wav',
      });
      expect(sha256(await readAll(await fx.store.get('acme/big.wav')))).toBe(sha256(body));
      if (fx.openUploads) expect(await fx.openUploads('acme/big')).toEqual([]);
    }, 60_000);

    it('a stream body that fails midway leaves no object (invariant 1)', async () => {
      const size = 17 * MiB;
      const body = new PassThrough();
      // The source is broken on purpose; a store that already gave up on it (and stopped listening)
      // must not turn that into an uncaught error of the test process.
      body.on('error', () => {});
      const put = fx.store.put('acme/broken.wav', body, { size, metadata: {} });
      body.write(randomBytes(9 * MiB));
      setTimeout(() => body.destroy(new Error('the source broke')), 50);
      await expect(put).rejects.toThrow();
      expect(await fx.store.head('acme/broken.wav')).toBeUndefined();
      if (fx.openUploads) expect(await fx.openUploads('acme/broken')).toEqual([]);
    }, 60_000);

    it('a stream body shorter than its declared size leaves no object', async () => {
      const body = randomBytes(9 * MiB);
      await expect(
        fx.store.put('acme/short.wav', streamOf(body), { size: 10 * MiB, metadata: {} }),
      ).rejects.toThrow(/short/);
      expect(await fx.store.head('acme/short.wav')).toBeUndefined();
      if (fx.openUploads) expect(await fx.openUploads('acme/short')).toEqual([]);
    }, 60_000);

    it('replaceMetadata replaces the metadata and keeps the body and the content type', async () => {
      const body = randomBytes(10_000);
      await fx.store.put('acme/meta.wav', body, {
        size: body.length,
        metadata: { org: 'acme', 'call-id': 'old' },
        contentType: 'audio/wav',
      });
      await fx.store.replaceMetadata(
        'acme/meta.wav',
        { org: 'acme', 'call-id': 'new', email: 'a@b.c' },
        'audio/wav',
      );
      const head = await fx.store.head('acme/meta.wav');
      expect(head?.metadata).toEqual({ org: 'acme', 'call-id': 'new', email: 'a@b.c' });
      expect(head?.contentType).toBe('audio/wav');
      expect(head?.size).toBe(body.length);
      expect(sha256(await readAll(await fx.store.get('acme/meta.wav')))).toBe(sha256(body));
    });

    it('list: only the prefix, every page, sizes', async () => {
      const n = fx.listPageSize === undefined ? 40 : fx.listPageSize + 3;
      const keys = Array.from({ length: n }, (_, i) => `listing/p/${String(i).padStart(5, '0')}.wav`);
      for (let at = 0; at < keys.length; at += 16) {
        await Promise.all(
          keys
            .slice(at, at + 16)
            .map((k, i) => fx.store.put(k, Buffer.alloc(i % 3), { size: i % 3, metadata: {} })),
        );
      }
      await fx.store.put('listing/other.wav', Buffer.alloc(1), { size: 1, metadata: {} });
      const seen: { key: string; size: number }[] = [];
      for await (const o of fx.store.list('listing/p/')) seen.push(o);
      expect(seen.map((o) => o.key).sort()).toEqual(keys);
      expect(seen.find((o) => o.key === keys[2])?.size).toBe(2);
    }, 120_000);
  });
}

/** Retries through the fault proxy: each case arranges one fault, then a buffered put must succeed. */
export function describeObjectStoreResilience(name: string, setup: () => Promise<ObjectStoreFaultFixture>) {
  describe(`ObjectStore resilience: ${name}`, () => {
    let fx: ObjectStoreFaultFixture;
    beforeAll(async () => {
      fx = await setup();
    });
    afterAll(async () => {
      await fx?.stop();
    });

    /** Puts a buffer; returns the PUTs the proxy saw for it and how long it took. */
    async function putThrough(key: string) {
      const body = randomBytes(20_000);
      const seen = fx.requests().length;
      const started = Date.now();
      await fx.store.put(key, body, { size: body.length, metadata: { org: 'acme' } });
      const ms = Date.now() - started;
      const puts = fx
        .requests()
        .slice(seen)
        .filter((r) => r.method === 'PUT');
      expect((await fx.store.head(key))?.size).toBe(body.length);
      return { puts, ms };
    }

    it('a buffer put with its SHA-256 given is signed with it, retries too (the client does not hash the body again)', async () => {
      const body = randomBytes(20_000);
      const seen = fx.requests().length;
      fx.proxy.failNext(1, 503);
      await fx.store.put('acme/signed-hash.wav', body, {
        size: body.length,
        metadata: {},
        sha256: sha256(body),
      });
      const puts = fx
        .requests()
        .slice(seen)
        .filter((r) => r.method === 'PUT');
      expect(puts.map((r) => [r.status, r.payloadHash])).toEqual([
        [503, sha256(body)],
        [200, sha256(body)],
      ]);
    });

    it('503 SlowDown, then success: retried', async () => {
      fx.proxy.failNext(1, 503);
      const { puts } = await putThrough('acme/r503.wav');
      expect(puts.map((r) => r.status)).toEqual([503, 200]);
    });

    it('503 SlowDown with Retry-After: the retry waits for it', async () => {
      fx.proxy.failNext(1, 503, { code: 'SlowDown', headers: { 'retry-after': '2' } });
      const { puts, ms } = await putThrough('acme/retry-after.wav');
      expect(puts.map((r) => r.status)).toEqual([503, 200]);
      expect(ms).toBeGreaterThanOrEqual(1500);
    });

    it('400 RequestTimeout (the store gave up reading the body): retried', async () => {
      fx.proxy.failNext(1, 400, { code: 'RequestTimeout' });
      const { puts } = await putThrough('acme/r400.wav');
      expect(puts.map((r) => r.status)).toEqual([400, 200]);
    });

    it('403 RequestTimeTooSkewed from a store whose clock is 10 min ahead: offset from Date, signed again', async () => {
      // The SDK corrects (and retries) when the store's Date differs from this clock by 4 min or more;
      // s3rver takes a signature up to 15 min off, so the retry signed 10 min ahead is accepted.
      const ahead = new Date(Date.now() + 10 * 60_000).toUTCString();
      fx.proxy.failNext(1, 403, { code: 'RequestTimeTooSkewed', headers: { date: ahead } });
      const { puts } = await putThrough('acme/skew.wav');
      expect(puts.map((r) => r.status)).toEqual([403, 200]);
    });

    it('301 PermanentRedirect with x-amz-bucket-region: signed for that region and sent again', async () => {
      fx.proxy.failNext(1, 301, {
        code: 'PermanentRedirect',
        headers: { 'x-amz-bucket-region': 'eu-west-1' },
      });
      const { puts } = await putThrough('acme/r301.wav');
      expect(puts.map((r) => r.status)).toEqual([301, 200]);
    });

    it('403 AccessDenied is not retried', async () => {
      fx.proxy.failNext(1, 403, { code: 'AccessDenied' });
      const seen = fx.requests().length;
      const body = Buffer.alloc(10);
      await expect(
        fx.store.put('acme/denied.wav', body, { size: body.length, metadata: {} }),
      ).rejects.toThrow();
      expect(
        fx
          .requests()
          .slice(seen)
          .filter((r) => r.method === 'PUT'),
      ).toHaveLength(1);
    });
  });
}
