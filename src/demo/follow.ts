/**
 * `--follow`: after the summary the sandbox and the daemon keep running; the demo tells how to drop a
 * new file or raise an allocation, and prints each file that becomes synced or parked, until Ctrl-C.
 */
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { OpsContext } from '../ops/context.js';
import type { Sandbox } from '../sandbox/index.js';
import type { DemoTenant } from './scenario.js';

/** Follow mode: prints each file that becomes synced or parked, until `signal` aborts. */
export async function follow(
  ops: OpsContext,
  orgs: string[],
  out: { line(text?: string): void },
  signal: AbortSignal,
): Promise<void> {
  const known = new Map<string, string>();
  const scan = async (announce: boolean) => {
    for (const org of orgs) {
      const [synced, parked] = await Promise.all([ops.state.allSynced(org), ops.state.parked(org)]);
      const now = new Map<string, string>();
      for (const [path, rec] of synced) now.set(`${org}/${path}`, `synced (${rec.size} bytes)`);
      for (const p of parked) now.set(`${org}/${p.path}`, `parked: ${p.reason} — ${p.detail ?? ''}`);
      for (const [key, what] of now) {
        if (announce && known.get(key) !== what)
          out.line(`  ${new Date().toISOString().slice(11, 19)}  ${key}  ${what}`);
        known.set(key, what);
      }
    }
  };
  await scan(false);
  while (!signal.aborted) {
    await delay(1_000, undefined, { signal }).catch(() => {});
    if (!signal.aborted) await scan(true).catch(() => {});
  }
}

export function followHints(sandbox: Sandbox, tenants: DemoTenant[]): string[] {
  const lines = ['Following: the daemon keeps polling every 2 s. Press Ctrl-C to stop and clean up.'];
  const initech = sandbox.ftp.tenants.initech?.home;
  const sample = tenants.find((t) => t.org === 'initech')?.files[0]?.path;
  if (initech && sample) {
    const from = join(initech, ...sample.split('/'));
    lines.push(
      '  Drop a new recording into a tenant directory and watch it sync two polls later:',
      `    cp '${from}' \\`,
      `       '${join(dirname(from), 'new.agent@initech.example_2024-03-05_1200.wav')}'`,
      "    (a name that does not match initech's pattern gets its defaultEmail and the file date)",
    );
  }
  lines.push(
    "  Raise globex's minute allocation: its parked recordings ask Vela again every 5 s, then sync:",
    `    curl -X PUT -H 'Authorization: Bearer ${sandbox.vela.token}' -H 'content-type: application/json' \\`,
    `       -d '{"minutes": 600}' ${sandbox.vela.adminUrl}/allocations/globex`,
  );
  return lines;
}
