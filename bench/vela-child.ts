/**
 * The Vela stand-in in a process of its own (bench/api.ts), so that neither the load generator nor the
 * API server pays for its answers. IPC: `ready` {url} once listening; `calls` → how many allocation
 * calls each org made so far; `usage` → its CPU time. Ends on SIGTERM or when the parent goes away.
 */
import { startVelaStandin } from '../src/standin/vela-standin.js';
import { failChild } from './lib/child.js';

async function main() {
  const token = process.env.FTPSYNC_BENCH_VELA_TOKEN ?? 'bench-vela';
  const vela = await startVelaStandin({ token, defaultAllocation: { status: 'within' } });
  const stop = () => void vela.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'calls') {
      const perOrg: Record<string, number> = {};
      for (const c of vela.calls()) {
        const org = c.org_id ?? '';
        perOrg[org] = (perOrg[org] ?? 0) + 1;
      }
      process.send?.({ type: 'calls', perOrg });
    } else if (m?.type === 'usage') {
      process.send?.({ type: 'usage', cpu: process.cpuUsage() });
    }
  });
  process.send?.({ type: 'ready', url: vela.url });
}

main().catch(failChild);
