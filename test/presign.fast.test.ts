/**
 * The presigned POST's signature, made with a signing key kept per day and credentials, is the one the
 * SDK's own SigV4 signer (@smithy/signature-v4) gives for the same policy, whatever the day, the
 * credentials (rotated, temporary) or the region. A stale key (kept across a day or a rotation) would
 * differ here, and be refused by S3 (test/rgw/api-policy.test.ts checks a real one).
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, Checksum, SourceData } from '@smithy/types';
import { describe, expect, it } from 'vitest';
import { makeS3Presigner } from '../src/adapters/s3-presign.js';

class NodeSha256 implements Checksum {
  private h: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.h = this.make();
  }
  private make(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    const s = this.secret;
    return createHmac('sha256', typeof s === 'string' ? s : Buffer.from(s as Uint8Array));
  }
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
  reset(): void {
    this.h = this.make();
  }
}

const sdkSignature = (creds: AwsCredentialIdentity, region: string, policy: string, date: Date) =>
  new SignatureV4({ credentials: creds, region, service: 's3', sha256: NodeSha256 }).sign(policy, {
    signingDate: date,
  });

const s3 = { bucket: 'calls', region: 'eu-west-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true };
const input = (n: number) => ({
  key: `acme/api/${n}/call.wav`,
  maxSize: 1024,
  expiresAt: new Date('2024-03-06T00:00:00Z'),
  metadata: { org: 'acme', 'upload-id': String(n) },
});

describe('presigned POST signature', () => {
  it('equals the SDK signer’s across days, rotated and temporary credentials, one presigner throughout', async () => {
    const one = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-one' };
    const day1 = new Date('2024-03-05T23:59:58Z');
    const day2 = new Date('2024-03-06T00:00:01Z');
    const steps: [string, AwsCredentialIdentity, Date][] = [
      ['first', one, day1],
      ['same day again', one, day1],
      ['next day', one, day2],
      ['rotated secret', { ...one, secretAccessKey: 'secret-two' }, day2],
      ['other key id', { accessKeyId: 'AKIDOTHER', secretAccessKey: 'secret-two' }, day2],
      ['temporary', { accessKeyId: 'AKIDOTHER', secretAccessKey: 'secret-two', sessionToken: 'tok' }, day2],
      ['back to the first', one, day2],
    ];
    let creds = one;
    let now = day1;
    const presigner = makeS3Presigner(
      s3,
      async () => creds,
      () => now,
    );
    const seen = new Set<string>();
    for (const [i, [label, c, d]] of steps.entries()) {
      creds = c;
      now = d;
      const post = await presigner.presign(input(i));
      const want = await sdkSignature(creds, s3.region, post.fields.policy!, now);
      expect(post.fields['x-amz-signature'], label).toBe(want);
      expect(post.fields['x-amz-credential'], label).toBe(
        `${creds.accessKeyId}/${now.toISOString().slice(0, 10).replace(/-/g, '')}/${s3.region}/s3/aws4_request`,
      );
      seen.add(post.fields['x-amz-signature']!);
    }
    expect(seen.size).toBe(steps.length);
  });

  it('another region signs with another key', async () => {
    const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-one' };
    const now = new Date('2024-03-05T10:00:00Z');
    for (const region of ['us-east-1', 'eu-central-1']) {
      const post = await makeS3Presigner(
        { ...s3, region },
        async () => creds,
        () => now,
      ).presign(input(1));
      expect(post.fields['x-amz-signature']).toBe(
        await sdkSignature(creds, region, post.fields.policy!, now),
      );
    }
  });
});
