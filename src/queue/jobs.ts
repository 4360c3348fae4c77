/**
 * BullMQ names, payloads, ids and retry timing. Job ids are deterministic so that the same version is
 * never queued twice while its job exists (once it completed, sync state has it); ids may not
 * contain `:`.
 */
import { createHash } from 'node:crypto';
import type { Version } from '../types.js';

export const POLL_QUEUE = 'poll';
export const SYNC_QUEUE = 'sync';
/** The BullMQ job name of a group sync job (a single version's job is named `sync`). */
export const GROUP_JOB = 'group';

export function versionJobId(org: string, v: Version, batch?: string): string {
  const h = createHash('sha256')
    .update(`${org}\0${v.path}\0${v.size}\0${v.mtime}`)
    .digest('hex')
    .slice(0, 32);
  return batch ? `f-${org}-${h}-${batch}` : `v-${org}-${h}`;
}

/**
 * A group job's id, from its members' version ids: the same group of the same versions is added once.
 * `g<files>-<org>-<hash>`: status counts a group as its files.
 */
export function groupJobId(org: string, versionIds: readonly string[]): string {
  const h = createHash('sha256').update(versionIds.join('\0')).digest('hex').slice(0, 32);
  return `g${versionIds.length}-${org}-${h}`;
}

/**
 * The parts of a sync job id built by `versionJobId`: `v-<org>-<hash>` (a version's own job) or
 * `f-<org>-<hash>-<batch>` (a forced resync), or by `groupJobId` (`files`: how many it carries).
 * Undefined for any other id.
 */
export function parseJobId(
  id: string,
): { org: string; forced: boolean; batch?: string; files?: number } | undefined {
  const g = /^g([1-9][0-9]*)-(.+)-[0-9a-f]{32}$/.exec(id);
  if (g) return { org: g[2]!, forced: false, files: Number(g[1]) };
  const m = /^([vf])-(.+)-[0-9a-f]{32}(?:-([A-Za-z0-9]+))?$/.exec(id);
  if (!m || (m[1] === 'f') !== (m[3] !== undefined)) return undefined;
  return { org: m[2]!, forced: m[1] === 'f', ...(m[3] !== undefined && { batch: m[3] }) };
}

export const schedulerId = (org: string) => `poll-${org}`;

/** Exponential backoff with full jitter: 2 s, 4 s, … capped at 5 minutes. */
export function retryDelay(attemptsMade: number, random = Math.random): number {
  const base = Math.min(300_000, 2_000 * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** `noSlotDelay` at most: 0.25–0.75 s. */
const NO_SLOT_MAX_SPAN_MS = 500;

/**
 * Delay before trying again when no connection slot is free: jittered, not an attempt. 50–150 ms for
 * a job's first four bounces (a slot another replica holds is often free again by then: with 4
 * replicas in `npm run bench:scale`, a short delay was ahead of 250–750 ms in most rounds, see
 * docs/scaling.md), then doubling to at most 250–750 ms, so that a tenant whose slots stay busy (long
 * transfers) is not fetched and put back many times a second by every worker.
 */
export function noSlotDelay(bounces: number, random = Math.random): number {
  const span = Math.min(NO_SLOT_MAX_SPAN_MS, 100 * 2 ** Math.min(8, Math.max(0, bounces - 3)));
  return Math.round(span / 2 + random() * span);
}

/**
 * How often a job went back to the queue since it last ran to an outcome: BullMQ counts every pickup
 * (`attemptsStarted`, this one included) and every failed attempt (`attemptsMade`). A parked or
 * waiting job's earlier pickups count too: it only makes its next no-slot delay longer.
 */
export const bouncesOf = (job: { attemptsStarted: number; attemptsMade: number }) =>
  Math.max(0, job.attemptsStarted - job.attemptsMade - 1);
