/**
 * The upload API's domain: a presigned POST for one call after Vela confirmed the allocation, the
 * pending upload it leaves, and how that upload becomes a call (README, "Upload API").
 *
 * Allocation before signature: nothing is signed without Vela's answer. `exceeded` is an error with
 * code `minute_allocation_exceeded`; Vela down, slow or throttling is a 503 with `Retry-After`.
 *
 * An upload becomes a call when its object is seen: by the client's optional `complete` call (one
 * HEAD of that key) or by the sweep (one listing of the org's `api/` prefix for all its pending
 * uploads, never a HEAD per upload). Exactly one replica records it: the one whose `claim` took it
 * out of pending. Its size is checked against what the policy allowed; it is then counted in sync
 * state like an FTP call (path `api/<id>/<filename>`), and a zip goes to the batch pipeline through
 * `ArchiveIntake.onArchiveUploaded`. An upload whose signature expired without an object is dropped
 * from pending and counted.
 */
import { randomUUID } from 'node:crypto';
import { PermanentError, toError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AllocationCheck } from '../ports/allocation.js';
import type { ApiTokenStore, ArchiveIntake, PendingUpload, PendingUploads, Presigner } from '../ports/api.js';
import type { ObjectStore } from '../ports/object-store.js';
import type { SyncStateStore } from '../ports/sync-state.js';
import { objectKey, tenantPrefix } from '../sync/key.js';

/** An answer of the API other than success: an HTTP status, a stable code, a message naming the field. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { field?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message);
  }
}

/** What the sweep and `complete` count (metrics `ftpsync_api_uploads_total{outcome}`). */
export type UploadEvent = 'signed' | 'completed' | 'expired' | 'too-large' | 'exceeded' | 'vela-unavailable';

export interface UploadRequest {
  org: string;
  email?: string;
  /** YYYY-MM-DD */
  dateOfCall?: string;
  /** The file's name (one path segment); the key ends with it. Default `recording`. */
  filename?: string;
  contentType?: string;
}

export interface UploadGrant {
  id: string;
  url: string;
  fields: Record<string, string>;
  key: string;
  expiresAt: string;
  voiceId: string;
  maxSize: number;
}

export interface UploadServiceDeps {
  /** Undefined with `vela.enabled: false`: signed without a check (warned at start). */
  allocation?: AllocationCheck;
  presigner: Presigner;
  pending: PendingUploads;
  tokens: Pick<ApiTokenStore, 'orgs'>;
  state: Pick<SyncStateStore, 'markSynced' | 'getSynced'>;
  store: Pick<ObjectStore, 'head' | 'list' | 'delete'>;
  archives: ArchiveIntake;
  keyTemplate: string;
  maxUploadSize: number;
  expiryMs: number;
  log: Logger;
  onEvent?: (org: string, event: UploadEvent, bytes?: number) => void;
  now?: () => number;
  /** @defaultValue 30 minutes (`EXPIRY_GRACE_MS`) */
  expiryGraceMs?: number;
}

/** An upload id as `request` makes them (randomUUID). */
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A Vela answer that does not come within this long is a 503 (a client waits for the signature). */
const DEFAULT_RETRY_AFTER_S = 5;
/**
 * How long after its signature expired an unseen upload is still waited for: S3 checks the expiry
 * when a POST starts, so a large file started just before may still be arriving.
 */
const EXPIRY_GRACE_MS = 30 * 60_000;

export interface UploadService {
  request(req: UploadRequest, signal?: AbortSignal): Promise<UploadGrant>;
  /**
   * The client says its POST is done: the object is looked up (one HEAD) and recorded. Idempotent:
   * for an upload already recorded (by an earlier `complete` or the sweep) it answers the same.
   */
  complete(org: string, id: string): Promise<{ key: string; size: number }>;
  /** One pass over every API org with pending uploads. */
  sweep(): Promise<{ completed: number; expired: number; tooLarge: number }>;
}

export function makeUploadService(deps: UploadServiceDeps): UploadService {
  const now = deps.now ?? Date.now;
  const graceMs = deps.expiryGraceMs ?? EXPIRY_GRACE_MS;
  const event = (org: string, e: UploadEvent, bytes?: number) => {
    try {
      deps.onEvent?.(org, e, bytes);
    } catch {
      // a side channel never breaks an upload
    }
  };

  const allocation = (req: UploadRequest, signal?: AbortSignal) => checkAllocation(deps, event, req, signal);
  const record = (u: PendingUpload, size: number) => recordUpload(deps, event, now, u, size);

  /**
   * An upload of `org` no longer pending: `recorded` when its object (one listing of
   * `<org prefix>api/<id>/`) has a sync-state record of that key; `recording` when the object is there
   * without one yet (another `complete` or the sweep claimed it and is recording it right now).
   * Undefined for an id never handed out, expired, or refused as too large (its object deleted).
   */
  async function after(
    org: string,
    id: string,
  ): Promise<{ state: 'recorded'; key: string; size: number } | { state: 'recording' } | undefined> {
    if (!UPLOAD_ID.test(id)) return undefined;
    const prefix = tenantPrefix(deps.keyTemplate, org);
    let found = false;
    for await (const o of deps.store.list(`${prefix}api/${id}/`)) {
      found = true;
      const rec = await deps.state.getSynced(org, o.key.slice(prefix.length));
      if (rec?.key === o.key) return { state: 'recorded', key: o.key, size: rec.size };
    }
    return found ? { state: 'recording' } : undefined;
  }

  return {
    async request(req, signal) {
      const id = randomUUID();
      const filename = req.filename ?? 'recording';
      let key: string;
      let path: string;
      try {
        path = `api/${id}/${filename}`;
        key = objectKey(deps.keyTemplate, req.org, path);
      } catch (err) {
        throw new ApiError(400, 'invalid_field', `filename: ${toError(err).message}`, { field: 'filename' });
      }
      const voiceId = await allocation(req, signal);
      const createdAt = now();
      const expiresAt = createdAt + deps.expiryMs;
      const post = await deps.presigner.presign({
        key,
        maxSize: deps.maxUploadSize,
        expiresAt: new Date(expiresAt),
        ...(req.contentType !== undefined && { contentType: req.contentType }),
        metadata: {
          org: req.org,
          ...(req.email !== undefined && { email: req.email }),
          ...(req.dateOfCall !== undefined && { 'date-of-call': req.dateOfCall }),
          'metadata-source': req.email !== undefined || req.dateOfCall !== undefined ? 'api' : 'none',
          'voice-id': voiceId,
          'upload-id': id,
        },
      });
      await deps.pending.add({
        id,
        org: req.org,
        key,
        path,
        ...(req.email !== undefined && { email: req.email }),
        ...(req.dateOfCall !== undefined && { dateOfCall: req.dateOfCall }),
        voiceId,
        ...(req.contentType !== undefined && { contentType: req.contentType }),
        maxSize: deps.maxUploadSize,
        createdAt,
        expiresAt,
      });
      event(req.org, 'signed');
      return {
        id,
        ...post,
        key,
        expiresAt: new Date(expiresAt).toISOString(),
        voiceId,
        maxSize: deps.maxUploadSize,
      };
    },

    async complete(org, id) {
      const u = await deps.pending.get(org, id);
      if (!u) {
        // Completed before (a retried call, or the sweep was first): the same answer again.
        const done = await after(org, id);
        if (done?.state === 'recorded') return { key: done.key, size: done.size };
        if (done?.state === 'recording') {
          throw new ApiError(
            409,
            'completion_in_progress',
            `id ${JSON.stringify(id)}: being recorded right now; call again for its answer`,
            { field: 'id', retryAfterSeconds: 1 },
          );
        }
        throw new ApiError(
          404,
          'upload_not_found',
          `id ${JSON.stringify(id)}: no pending or recorded upload of this org`,
          {
            field: 'id',
          },
        );
      }
      const head = await deps.store.head(u.key);
      if (!head) {
        throw new ApiError(409, 'object_missing', `id ${JSON.stringify(id)}: nothing was uploaded yet`, {
          field: 'id',
        });
      }
      const outcome = await record(u, head.size);
      if (outcome === 'too-large') {
        throw new ApiError(
          400,
          'upload_too_large',
          `file: ${head.size} bytes, more than the allowed ${u.maxSize}; deleted`,
          { field: 'file' },
        );
      }
      return { key: u.key, size: head.size };
    },

    async sweep() {
      const totals = { completed: 0, expired: 0, tooLarge: 0 };
      for (const org of await deps.tokens.orgs()) {
        try {
          const pending = await deps.pending.list(org);
          if (!pending.length) continue;
          const sizes = new Map<string, number>();
          for await (const o of deps.store.list(`${tenantPrefix(deps.keyTemplate, org)}api/`)) {
            sizes.set(o.key, o.size);
          }
          for (const u of pending) {
            const size = sizes.get(u.key);
            if (size !== undefined) {
              const outcome = await record(u, size);
              if (outcome === 'completed') totals.completed++;
              if (outcome === 'too-large') totals.tooLarge++;
            } else if (now() > u.expiresAt + graceMs) {
              // One HEAD, only for an upload about to be dropped: it may have arrived after the listing.
              const head = await deps.store.head(u.key);
              if (head) {
                const outcome = await record(u, head.size);
                if (outcome === 'completed') totals.completed++;
                if (outcome === 'too-large') totals.tooLarge++;
                continue;
              }
              if (!(await deps.pending.claim(org, u.id))) continue;
              totals.expired++;
              event(org, 'expired');
              deps.log.info({ org, key: u.key, upload: u.id }, 'upload api: expired without an object');
            }
          }
        } catch (err) {
          // One org's failure (a listing refused) never stops the others.
          deps.log.error({ org, err: toError(err).message }, 'upload api: sweep failed for org');
        }
      }
      return totals;
    },
  };
}

type UploadEventSink = (org: string, e: UploadEvent, bytes?: number) => void;

/** The Vela check before anything is signed: the voice id, or the API error that answers the request. */
async function checkAllocation(
  deps: UploadServiceDeps,
  event: UploadEventSink,
  req: UploadRequest,
  signal?: AbortSignal,
): Promise<string> {
  if (!deps.allocation) return 'unchecked';
  let answer: Awaited<ReturnType<AllocationCheck['check']>>;
  try {
    answer = await deps.allocation.check(
      {
        org: req.org,
        ...(req.email !== undefined && { email: req.email }),
        ...(req.dateOfCall !== undefined && { dateOfCall: req.dateOfCall }),
      },
      signal,
    );
  } catch (err) {
    if (err instanceof PermanentError) {
      deps.log.warn({ org: req.org, err: err.message }, 'upload api: vela refused the check');
      throw new ApiError(502, 'vela_rejected', 'Vela refused the allocation check for this org');
    }
    event(req.org, 'vela-unavailable');
    const ms = (err as { retryAfterMs?: unknown }).retryAfterMs;
    const retryAfterSeconds =
      typeof ms === 'number' && ms > 0 ? Math.min(300, Math.ceil(ms / 1000)) : DEFAULT_RETRY_AFTER_S;
    deps.log.warn({ org: req.org, err: toError(err).message }, 'upload api: vela unavailable');
    throw new ApiError(503, 'vela_unavailable', 'the allocation check is unavailable; retry later', {
      retryAfterSeconds,
    });
  }
  if (answer.allocation === 'exceeded') {
    event(req.org, 'exceeded');
    const left = answer.remainingMinutes !== undefined ? ` (${answer.remainingMinutes} minutes left)` : '';
    throw new ApiError(
      403,
      'minute_allocation_exceeded',
      `org_id ${JSON.stringify(req.org)}: minute allocation exceeded${left}; nothing was signed`,
      { field: 'org_id' },
    );
  }
  return answer.voiceId;
}

/** An uploaded object becomes a call (claimed by one replica only), or is deleted when outside the size. */
async function recordUpload(
  deps: UploadServiceDeps,
  event: UploadEventSink,
  now: () => number,
  u: PendingUpload,
  size: number,
): Promise<'completed' | 'too-large' | 'gone'> {
  if (!(await deps.pending.claim(u.org, u.id))) return 'gone';
  const log = deps.log.child({ org: u.org, key: u.key, upload: u.id });
  if (size > u.maxSize || size < 1) {
    // A store that does not enforce the policy's content-length-range: the object is not a call.
    await deps.store.delete(u.key).catch((err) => log.error({ err: toError(err).message }, 'delete failed'));
    log.warn({ size, maxSize: u.maxSize }, 'upload api: object outside the allowed size, deleted');
    event(u.org, 'too-large');
    return 'too-large';
  }
  const source = u.email !== undefined || u.dateOfCall !== undefined ? 'api' : 'none';
  await deps.state.markSynced(
    u.org,
    u.path,
    { size, mtime: new Date(u.createdAt).toISOString(), key: u.key, syncedAt: now() },
    source,
  );
  event(u.org, 'completed', size);
  log.info({ size }, 'upload api: call uploaded');
  if (u.path.toLowerCase().endsWith('.zip')) {
    await deps.archives
      .onArchiveUploaded({
        org: u.org,
        key: u.key,
        path: u.path,
        size,
        ...(u.email !== undefined && { email: u.email }),
        ...(u.dateOfCall !== undefined && { dateOfCall: u.dateOfCall }),
      })
      .catch((err) => log.error({ err: toError(err).message }, 'upload api: archive hand-off failed'));
  }
  return 'completed';
}
