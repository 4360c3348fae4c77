/**
 * Presigned POST (browser-based upload) for the upload API, signed with the SDK's SigV4 signer
 * (`@smithy/signature-v4`, the one `@aws-sdk/client-s3` uses). `@aws-sdk/s3-presigned-post` is not
 * used: it names its fields `X-Amz-Algorithm`, `Policy`, `X-Amz-Signature`…, and the platform's
 * documented answer has them in lower case (`policy`, `x-amz-algorithm`, …; S3 reads form field names
 * case-insensitively).
 *
 * The policy pins the bucket, the exact key, every signed field (metadata and content type
 * included) and a `content-length-range`; it expires at `expiresAt`. `x-amz-security-token` is
 * added (and pinned) only when the credentials are temporary.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, Checksum, SourceData } from '@smithy/types';
import type { Config } from '../config.js';
import type { PresignedPost, Presigner } from '../ports/api.js';
import { encodeMetadata } from './s3-multipart.js';

/** node:crypto as the signer's hash (the SDK's own Node hash package is not a direct dependency). */
class NodeSha256 implements Checksum {
  private h: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.h = this.make();
  }
  private make(): Hash | Hmac {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(this.secret));
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

function toBuffer(d: SourceData): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d as ArrayBuffer);
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
      // One signer per POST, on the credentials read above: a rotation in between cannot split them.
      const signer = new SignatureV4({
        credentials: creds,
        region: s3.region,
        service: 's3',
        sha256: NodeSha256,
      });
      const signature = await signer.sign(encoded, { signingDate: date });
      return { url, fields: { ...signed, policy: encoded, 'x-amz-signature': signature } };
    },
  };
}
