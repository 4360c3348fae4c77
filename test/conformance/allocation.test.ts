/**
 * The AllocationCheck conformance suite against the Vela adapter talking to the Vela stand-in (on
 * loopback) and against the scripted fake the fast suites use.
 */
import { randomUUID } from 'node:crypto';
import { makeVelaAllocationCheck } from '../../src/adapters/vela.js';
import { startVelaStandin } from '../../src/standin/vela-standin.js';
import { makeScriptedAllocation } from '../support/fakes/allocation.js';
import { describeAllocationConformance } from './allocation.js';

describeAllocationConformance('Vela adapter against the stand-in', async () => {
  const token = `tok-${randomUUID()}`;
  const standin = await startVelaStandin({ token });
  return {
    check: makeVelaAllocationCheck({ url: standin.url, token, timeoutMs: 5_000 }),
    answer(org, a) {
      standin.setAllocation(org, {
        status: a.allocation,
        ...(a.remainingMinutes !== undefined && { minutes: a.remainingMinutes }),
        voiceId: a.voiceId,
      });
    },
    down: (mode) => standin.setDown(mode === 'hang' ? 'hang' : mode ? 503 : false),
    calls: () =>
      standin.calls().map((c) => ({
        org: c.org_id ?? '',
        ...(c.email !== undefined && { email: c.email }),
        ...(c.date_of_call !== undefined && { dateOfCall: c.date_of_call }),
      })),
    stop: () => standin.close(),
  };
});

describeAllocationConformance('scripted fake', async () => {
  const fake = makeScriptedAllocation();
  return {
    check: fake,
    answer: (org, a) => fake.answer(org, a),
    down: (mode) => fake.down(mode === 'hang' ? 'hang' : mode ? 'unavailable' : false),
    calls: () => fake.calls,
    stop: async () => {},
  };
});
