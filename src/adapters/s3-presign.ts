/**
 * Presigned POST (browser-based upload) for the upload API, signed with AWS Signature Version 4 as
 * S3 defines it for POST policies: the string to sign is the base64 policy, the signature
 * `hex(HMAC-SHA256(signing key, policy))`, the signing key `HMAC("AWS4" + secret, date) → region →
 * "s3" → "aws4_request"`. `@aws-sdk/s3-presigned-post` is not used: it names its fields
 * `X-Amz-Algorithm`, `Policy`, `X-Amz-Signature`…, and the platform's documented answer has them in
 * lower case (`policy`, `x-amz-algorithm`, …; S3 reads form field names case-insensitively).
 *
 * The signing key changes once a day (and with the credentials): it is derived once and kept, so a
 * POST costs one HMAC. `@smithy/signature-v4` (the SDK's signer, which gives the same signature,
 * test/presign.fast.test.ts) costs five times that per POST, plus its own HMAC of the credentials to
 * find its cached key.
 *
 * The policy pins the bucket, the exact key, every signed field (metadata and content type
 * included) and a `content-length-range`; it expires at `expiresAt`. `x-amz-security-token` is
 * added (and pinned) only when the credentials are temporary.
 */
import { createHmac } from 'node:crypto';
import type { AwsCredentialIdentity } from '@smithy/types';
import type { Config } from '../config.js';
import type { PresignedPost, Presigner } from '../ports/api.js';
import { encodeMetadata } from './s3-multipart.js';

const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

/**
 * The SigV4 signing key for `region`/s3 on `day` (YYYYMMDD), kept for the last credentials and day
 * asked: rotated credentials or a new day derive a new one.
 */
export function makeSigningKeys(region: string): (creds: AwsCredentialIdentity, day: string) => Buffer {
  let last: { accessKeyId: string; secret: string; day: string; key: Buffer } | undefined;
  return (creds, day) => {
    if (
      last?.day === day &&
      last.accessKeyId === creds.accessKeyId &&
      last.secret === creds.secretAccessKey
    ) {
      return last.key;
    }
    const key = hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, day), region), 's3'), 'aws4_request');
    last = { accessKeyId: creds.accessKeyId, secret: creds.secretAccessKey, day, key };
    return key;
  };
}

/** `20240305T101500Z` */
const amzDate = (d: Date) =>
  d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');

/** Where a POST for `bucket` goes: path style (`endpoint/bucket`) or virtual-hosted. */
export function postUrl(s3: Pick<Config['s3'], 'bucket' | 'region' | 'endpoint' | 'forcePathStyle'>): string {
  if (!s3.endpoint) return `https://${s3.bucket}.s3.${s3.region}.amazonaws.com/`;
  const u = new URL(s3.endpoint);
  if (s3.forcePathStyle) return `${u.origin}${u.pathname.replace(/\/$/, '')}/${s3.bucket}`;
  return `${u.protocol}//${s3.bucket}.${u.host}${u.pathname.replace(/\/$/, '')}/`;
}

export function makeS3Presigner(
  s3: Pick<Config['s3'], 'bucket' | 'region' | 'endpoint' | 'forcePathStyle'>,
  credentials: () => Promise<AwsCredentialIdentity>,
  now: () => Date = () => new Date(),
): Presigner {
  const url = postUrl(s3);
  const signingKey = makeSigningKeys(s3.region);
  return {
    async presign(input): Promise<PresignedPost> {
      const creds = await credentials();
      const date = now();
      const xAmzDate = amzDate(date);
      const credential = `${creds.accessKeyId}/${xAmzDate.slice(0, 8)}/${s3.region}/s3/aws4_request`;
      const meta = Object.fromEntries(
        Object.entries(encodeMetadata(input.metadata)).map(([k, v]) => [`x-amz-meta-${k}`, v]),
      );
      const signed: Record<string, string> = {
        key: input.key,
        ...(input.contentType !== undefined && { 'content-type': input.contentType }),
        ...meta,
        'x-amz-algorithm': 'AWS4-HMAC-SHA256',
        'x-amz-credential': credential,
        'x-amz-date': xAmzDate,
        ...(creds.sessionToken && { 'x-amz-security-token': creds.sessionToken }),
      };
      const policy = {
        expiration: input.expiresAt.toISOString(),
        conditions: [
          { bucket: s3.bucket },
          ...Object.entries(signed).map(([k, v]) => ({ [k]: v })),
          ['content-length-range', 1, input.maxSize],
        ],
      };
      const encoded = Buffer.from(JSON.stringify(policy), 'utf8').toString('base64');
      // The key and the credential scope come from the credentials read above: a rotation in between
      // cannot split them.
      const signature = createHmac('sha256', signingKey(creds, xAmzDate.slice(0, 8)))
        .update(encoded, 'utf8')
        .digest('hex');
      return { url, fields: { ...signed, policy: encoded, 'x-amz-signature': signature } };
    },
  };
}
