/**
 * A scripted `AllocationCheck`: per-org answers, a log of every request as Vela would receive it, and
 * failures to inject. It keeps the port's contract as the Vela adapter does (proven by
 * test/conformance/allocation.ts): an org it has no answer for, and a request whose known fields are
 * malformed, are a `PermanentError` naming the tenant (Vela's 404 / 400); an injected outage is a
 * `VelaUnavailableError` (transient); the caller's abort is rethrown as its reason.
 */
import { VelaUnavailableError } from '../../../src/adapters/vela.js';
import { PermanentError, toError } from '../../../src/errors.js';
import type { AllocationCheck, AllocationRequest } from '../../../src/ports/allocation.js';
import type { AllocationAnswer } from '../../../src/types.js';

export type ScriptedFailure = 'unavailable' | 'rejected' | Error;
/** `hang`: no answer at all until the caller aborts (a Vela that stopped answering mid-request). */
export type ScriptedOutage = ScriptedFailure | 'hang';

export interface ScriptedAllocation extends AllocationCheck {
  /** Every request received, in order, with only the fields that were sent. */
  readonly calls: AllocationRequest[];
  /** How `org` is answered from now on. */
  answer(org: string, answer: AllocationAnswer): void;
  /** The next `times` checks (of `org`, or of any org) fail: transient, permanent, or this error. */
  failNext(failure: ScriptedFailure, opts?: { org?: string; times?: number }): void;
  /** Every check fails this way (or hangs until its caller aborts) until `down(false)`. */
  down(failure: ScriptedOutage | false): void;
}

const EMAIL = /^[^@\s]+@[^@\s]+$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

export function makeScriptedAllocation(
  answers: Record<string, AllocationAnswer> = {},
  opts: { default?: AllocationAnswer } = {},
): ScriptedAllocation {
  const table = new Map(Object.entries(answers));
  const calls: AllocationRequest[] = [];
  const queued: { failure: ScriptedFailure; org?: string }[] = [];
  let outage: ScriptedOutage | false = false;

  const raise = (failure: ScriptedFailure, org: string): never => {
    if (failure instanceof Error) throw failure;
    if (failure === 'unavailable') {
      throw new VelaUnavailableError(`vela unavailable for org ${JSON.stringify(org)}: scripted outage`, {
        org,
        status: 503,
      });
    }
    throw new PermanentError(`vela rejected org ${JSON.stringify(org)}: scripted rejection`);
  };

  return {
    calls,
    answer(org, answer) {
      table.set(org, answer);
    },
    failNext(failure, o = {}) {
      for (let i = 0; i < (o.times ?? 1); i++)
        queued.push({ failure, ...(o.org !== undefined && { org: o.org }) });
    },
    down(failure) {
      outage = failure;
    },
    async check(req, signal) {
      if (signal?.aborted) throw toError(signal.reason);
      // Logged as sent: the fields that are known, never an empty or null placeholder.
      calls.push({
        org: req.org,
        ...(req.email !== undefined && { email: req.email }),
        ...(req.dateOfCall !== undefined && { dateOfCall: req.dateOfCall }),
      });
      const i = queued.findIndex((q) => q.org === undefined || q.org === req.org);
      if (i >= 0) raise(queued.splice(i, 1)[0]!.failure, req.org);
      if (outage === 'hang') {
        await new Promise<never>((_, reject) => {
          if (!signal) return; // hangs for good, as an unanswered request without a timeout would
          signal.addEventListener('abort', () => reject(toError(signal.reason)), { once: true });
        });
      }
      if (outage && outage !== 'hang') raise(outage, req.org);
      if (req.email !== undefined && !EMAIL.test(req.email)) {
        throw new PermanentError(
          `vela rejected org ${JSON.stringify(req.org)}: email: expected an email address, got ${JSON.stringify(req.email)}`,
        );
      }
      if (req.dateOfCall !== undefined && !DATE.test(req.dateOfCall)) {
        throw new PermanentError(
          `vela rejected org ${JSON.stringify(req.org)}: date_of_call: expected a date YYYY-MM-DD, got ${JSON.stringify(req.dateOfCall)}`,
        );
      }
      const answer = table.get(req.org) ?? opts.default;
      if (!answer) {
        throw new PermanentError(
          `vela rejected org ${JSON.stringify(req.org)}: unknown organisation (scripted: no answer for it)`,
        );
      }
      return { ...answer };
    },
  };
}
