/**
 * Ports of the upload API (README, "Upload API"): API tokens per org, pending uploads, the presigner
 * and the hook that hands an uploaded archive to the batch pipeline.
 */

/** What `tokens list` shows of a token: never the secret, never its hash. */
export interface ApiTokenInfo {
  /** The token's public id (also its first part: `fsk_<id>_<secret>`). */
  id: string;
  org: string;
  /** ms since epoch */
  createdAt: number;
}

/**
 * API tokens, stored only as SHA-256 hashes of their secret. A token names its id, so checking one is
 * one lookup and one constant-time comparison of equal-length digests.
 */
export interface ApiTokenStore {
  /** Makes a token for `org` (registering the org for the API) and returns it: the only time it is seen. */
  create(org: string): Promise<{ token: string; info: ApiTokenInfo }>;
  list(org?: string): Promise<ApiTokenInfo[]>;
  /** False when the org has no token with that id. */
  revoke(org: string, id: string): Promise<boolean>;
  /** The org a presented token belongs to; undefined for an unknown, revoked or malformed token. */
  verify(token: string): Promise<string | undefined>;
  /** Orgs registered for the API (those that ever had a token and were not removed). */
  orgs(): Promise<string[]>;
  /** Registers an org for the API without a token (`tenants add --api-only`). */
  addOrg(org: string): Promise<void>;
  /** Unregisters an org and revokes all its tokens; false when it was not registered. */
  removeOrg(org: string): Promise<boolean>;
}

/** A presigned POST handed out and not yet seen in the store. */
export interface PendingUpload {
  id: string;
  org: string;
  key: string;
  /** The path part of the key, as sync state names the call (`api/<id>/<filename>`). */
  path: string;
  email?: string;
  /** YYYY-MM-DD */
  dateOfCall?: string;
  /** Vela's voice_id status at signing time. */
  voiceId: string;
  contentType?: string;
  /** The largest size the policy allows. */
  maxSize: number;
  /** ms since epoch: when the signature was made and when it stops working. */
  createdAt: number;
  expiresAt: number;
}

export interface PendingUploads {
  add(u: PendingUpload): Promise<void>;
  get(org: string, id: string): Promise<PendingUpload | undefined>;
  list(org: string): Promise<PendingUpload[]>;
  /**
   * Takes the upload out of pending; true for exactly one caller across all replicas (the one that
   * then records the call), false when it was gone already.
   */
  claim(org: string, id: string): Promise<boolean>;
}

/** A browser-style POST form: the `url` and the `fields` to send before the file. */
export interface PresignedPost {
  url: string;
  fields: Record<string, string>;
}

export interface PresignInput {
  key: string;
  /** Largest body allowed (`content-length-range`, from 1). */
  maxSize: number;
  expiresAt: Date;
  contentType?: string;
  /** x-amz-meta-* fields, signed (names without the prefix, lower case). */
  metadata: Record<string, string>;
}

export interface Presigner {
  presign(input: PresignInput): Promise<PresignedPost>;
}

/** A zip that arrived through the API, now a call of its org in S3. */
export interface UploadedArchive {
  org: string;
  key: string;
  /** The sync-state path (`api/<id>/<name>.zip`). */
  path: string;
  size: number;
  email?: string;
  dateOfCall?: string;
}

/**
 * Where an uploaded archive goes: the zip-batch pipeline. Called once per archive, after its call is
 * recorded; a failure is logged and the archive stays in S3 (it can be imported again).
 */
export interface ArchiveIntake {
  onArchiveUploaded(archive: UploadedArchive): Promise<void>;
}

/** Requests per org and window, shared by every replica. */
export interface RateLimiter {
  /** Counts one request of `org`; `ok: false` with the seconds until the window ends when over. */
  take(org: string): Promise<{ ok: boolean; retryAfterSeconds: number }>;
}
