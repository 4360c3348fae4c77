/**
 * One conformance suite for the `AllocationCheck` port: the Vela adapter (against the Vela stand-in)
 * and the scripted fake must both pass it, so the fake can stand in for Vela in the fast suites.
 * Only the contract the domain relies on is here (answers, what Vela receives, transient versus
 * permanent failures by type); the HTTP details of the adapter stay in test/vela.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VelaUnavailableError } from '../../src/adapters/vela.js';
import { PermanentError } from '../../src/errors.js';
import type { AllocationCheck, AllocationRequest } from '../../src/ports/allocation.js';
import type { AllocationAnswer } from '../../src/types.js';

export interface AllocationFixture {
  check: AllocationCheck;
  /** How `org` is answered from now on. */
  answer(org: string, answer: AllocationAnswer): void;
  /** Vela cannot answer now (an outage), or takes no notice of the request (`hang`), until `down(false)`. */
  down(mode: boolean | 'hang'): void;
  /** Every request as Vela received it, in order, with only the fields it received. */
  calls(): AllocationRequest[];
  stop(): Promise<void>;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: Error) => err,
  );
}

export function describeAllocationConformance(
  name: string,
  makeFixture: () => Promise<AllocationFixture>,
): void {
  describe(`AllocationCheck conformance: ${name}`, () => {
    let fx: AllocationFixture;
    let n = 0;
    const tag = randomBytes(3).toString('hex');
    const freshOrg = () => `org-${tag}-${++n}`;

    beforeAll(async () => {
      fx = await makeFixture();
    });
    afterAll(async () => {
      fx?.down(false);
      await fx?.stop();
    });

    /** The requests received since `before` (a count of calls()). */
    const since = (before: number) => fx.calls().slice(before);

    it('answers within, with the voice id, and no remaining minutes when Vela gave none', async () => {
      const org = freshOrg();
      fx.answer(org, { allocation: 'within', voiceId: 'enrolled' });
      expect(await fx.check.check({ org })).toStrictEqual({ allocation: 'within', voiceId: 'enrolled' });
    });

    it('answers exceeded with the remaining minutes (0 included), and within with a fraction', async () => {
      const [a, b] = [freshOrg(), freshOrg()];
      fx.answer(a, { allocation: 'exceeded', remainingMinutes: 0, voiceId: 'enrolled' });
      fx.answer(b, { allocation: 'within', remainingMinutes: 12.5, voiceId: 'enrolled' });
      expect(await fx.check.check({ org: a })).toStrictEqual({
        allocation: 'exceeded',
        remainingMinutes: 0,
        voiceId: 'enrolled',
      });
      expect(await fx.check.check({ org: b })).toStrictEqual({
        allocation: 'within',
        remainingMinutes: 12.5,
        voiceId: 'enrolled',
      });
    });

    it('keeps the voice id as Vela gave it', async () => {
      const org = freshOrg();
      fx.answer(org, { allocation: 'within', voiceId: 'pending enrolment (2 of 3)' });
      expect((await fx.check.check({ org })).voiceId).toBe('pending enrolment (2 of 3)');
    });

    it('follows a change of the allocation at once (no caching)', async () => {
      const org = freshOrg();
      fx.answer(org, { allocation: 'exceeded', voiceId: 'enrolled' });
      expect((await fx.check.check({ org })).allocation).toBe('exceeded');
      fx.answer(org, { allocation: 'within', voiceId: 'enrolled' });
      expect((await fx.check.check({ org })).allocation).toBe('within');
    });

    it('sends org always, email and date of call only when known (never empty or null)', async () => {
      const org = freshOrg();
      fx.answer(org, { allocation: 'within', voiceId: 'enrolled' });
      const before = fx.calls().length;
      const email = 'agent@acme.example';
      const dateOfCall = '2024-03-05';
      await fx.check.check({ org });
      await fx.check.check({ org, email });
      await fx.check.check({ org, dateOfCall });
      await fx.check.check({ org, email, dateOfCall });
      expect(since(before)).toStrictEqual([
        { org },
        { org, email },
        { org, dateOfCall },
        { org, email, dateOfCall },
      ]);
    });

    it('fails for an unknown tenant with a PermanentError naming it', async () => {
      const org = freshOrg();
      const err = await rejection(fx.check.check({ org }));
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toContain(org);
    });

    it('fails a request with a malformed email with a PermanentError naming the tenant and the field', async () => {
      const org = freshOrg();
      fx.answer(org, { allocation: 'within', voiceId: 'enrolled' });
      const err = await rejection(fx.check.check({ org, email: 'not an address' }));
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toContain(org);
      expect(err.message).toContain('email');
    });

    it('fails transiently while Vela is down (VelaUnavailableError, not permanent), and answers once it is back', async () => {
      const org = freshOrg();
      fx.answer(org, { allocation: 'within', voiceId: 'enrolled' });
      fx.down(true);
      try {
        const err = await rejection(fx.check.check({ org }));
        expect(err).toBeInstanceOf(VelaUnavailableError);
        expect(err).not.toBeInstanceOf(PermanentError);
        expect((err as VelaUnavailableError).org).toBe(org);
        expect(err.message).toContain(org);
      } finally {
        fx.down(false);
      }
      expect((await fx.check.check({ org })).allocation).toBe('within');
    });

    it('rethrows the caller’s abort during a check as its reason, neither a Vela error nor permanent', async () => {
      const org = freshOrg();
      fx.answer(org, { allocation: 'within', voiceId: 'enrolled' });
      fx.down('hang');
      try {
        const reason = new Error('shutting down');
        const abort = new AbortController();
        const pending = rejection(fx.check.check({ org }, abort.signal));
        setTimeout(() => abort.abort(reason), 20);
        expect(await pending).toBe(reason);
      } finally {
        fx.down(false);
      }
    });

    it('rethrows the abort of a signal aborted before the check as its reason', async () => {
      const org = freshOrg();
      fx.answer(org, { allocation: 'within', voiceId: 'enrolled' });
      const reason = new Error('shutting down');
      expect(await rejection(fx.check.check({ org }, AbortSignal.abort(reason)))).toBe(reason);
    });
  });
}
