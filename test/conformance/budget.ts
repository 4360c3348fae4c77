/**
 * A conformance suite for the `ConnectionBudget` port (invariant 5): the Redis adapter and the
 * in-memory fake the fast suites use must both pass it. Lease expiry and renewal are the adapter's
 * own business (timers against Redis's clock) and stay out: only what the session pool relies on.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionBudget } from '../../src/ports/budget.js';

export interface BudgetFixture {
  budget: ConnectionBudget;
  stop(): Promise<void>;
}

export function describeBudgetConformance(name: string, makeFixture: () => Promise<BudgetFixture>): void {
  describe(`ConnectionBudget conformance: ${name}`, () => {
    let fx: BudgetFixture;
    let b: ConnectionBudget;
    let n = 0;
    const tag = randomBytes(3).toString('hex');
    const freshOrg = () => `org-${tag}-${++n}`;

    beforeAll(async () => {
      fx = await makeFixture();
      b = fx.budget;
    });
    afterAll(async () => {
      await fx?.stop();
    });

    it('gives distinct leases up to the limit, then none (not paused); a release frees a slot', async () => {
      const org = freshOrg();
      expect(await b.room(org, 2)).toBe(2);
      const l1 = await b.tryAcquire(org, 2);
      const l2 = await b.tryAcquire(org, 2);
      expect(typeof l1).toBe('string');
      expect(typeof l2).toBe('string');
      expect(l1).not.toBe(l2);
      expect(await b.inUse(org)).toBe(2);
      expect(await b.room(org, 2)).toBe(0);
      expect(await b.tryAcquire(org, 2)).toStrictEqual({});
      await b.release(org, l1 as string);
      expect(await b.inUse(org)).toBe(1);
      expect(await b.room(org, 2)).toBe(1);
      expect(typeof (await b.tryAcquire(org, 2))).toBe('string');
      expect(b.lost(l2 as string)).toBe(false);
    });

    it('keeps tenants apart', async () => {
      const [a, c] = [freshOrg(), freshOrg()];
      await b.tryAcquire(a, 1);
      expect(await b.room(a, 1)).toBe(0);
      expect(await b.room(c, 1)).toBe(1);
      expect(await b.inUse(c)).toBe(0);
    });

    it('marks a tenant wanted when an acquire or a room check found no slot, and only then', async () => {
      const [a, c, d] = [freshOrg(), freshOrg(), freshOrg()];
      await b.tryAcquire(a, 1);
      await b.tryAcquire(c, 1);
      await b.tryAcquire(d, 2);
      expect(await b.tryAcquire(a, 1)).toStrictEqual({});
      expect(await b.room(c, 1)).toBe(0);
      expect(await b.room(d, 2)).toBe(1);
      expect(await b.wanted([a, c, d])).toEqual(new Set([a, c]));
    });

    it('does not mark a tenant wanted for a refusal with markWanted: false', async () => {
      const a = freshOrg();
      await b.tryAcquire(a, 1);
      expect(await b.tryAcquire(a, 1, { markWanted: false })).toStrictEqual({});
      expect(await b.wanted([a])).toEqual(new Set());
      expect(await b.tryAcquire(a, 1)).toStrictEqual({});
      expect(await b.wanted([a])).toEqual(new Set([a]));
    });

    it('after a 421: lowers the limit and pauses logins, the pause doubling with each 421 in a row until a login succeeds', async () => {
      const org = freshOrg();
      await b.tryAcquire(org, 5);
      const first = await b.lower(org, 1, 60_000);
      expect(first.pausedMs).toBe(2_000);
      const paused = await b.tryAcquire(org, 5);
      expect(paused).toMatchObject({ pausedMs: expect.any(Number) });
      expect((paused as { pausedMs: number }).pausedMs).toBeGreaterThan(1_000);
      expect((paused as { pausedMs: number }).pausedMs).toBeLessThanOrEqual(2_000);
      const room = await b.room(org, 5);
      expect(room).toBeLessThan(-1_000);
      expect(room).toBeGreaterThanOrEqual(-2_000);
      expect((await b.lower(org, 1, 60_000)).pausedMs).toBe(4_000);
      expect((await b.lower(org, 1, 60_000)).pausedMs).toBe(8_000);
      await b.loggedIn(org);
      expect((await b.lower(org, 0, 60_000)).pausedMs).toBe(2_000);
    });
  });
}
