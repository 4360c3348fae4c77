/**
 * The upload API (startDaemon, role `api`) in a process of its own, driven by bench/api.ts: the load
 * generator and the Vela stand-in run elsewhere, so this process's CPU time is the server's alone.
 *
 * argv[2]: a JSON file `{config, profile?}` (`config` as YAML would give it). S3 credentials come from
 * the environment (the standard AWS chain, as in production). IPC: `ready` {url} once listening;
 * `usage` → CPU time and peak RSS; `profile-start` / `profile-stop` {path} → a `.cpuprofile` of what
 * ran in between (inspector); `exit` → closes the daemon and exits.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { dirname } from 'node:path';
import { parseConfig } from '../src/config.js';
import { makeLogger } from '../src/log.js';
import { startDaemon } from '../src/main.js';
import { failChild } from './lib/child.js';

async function main() {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { config: Record<string, unknown> };
  const config = parseConfig(spec.config, {});
  const daemon = await startDaemon(config, { role: 'api', log: makeLogger({ level: config.log.level }) });
  let profiler: Session | undefined;
  process.on('message', (m: { type?: string; path?: string }) => {
    void (async () => {
      if (m?.type === 'usage') {
        process.send?.({ type: 'usage', cpu: process.cpuUsage(), maxRssKiB: process.resourceUsage().maxRSS });
      } else if (m?.type === 'profile-start') {
        profiler = new Session();
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
        await profiler.post('Profiler.start');
        process.send?.({ type: 'profile-started' });
      } else if (m?.type === 'profile-stop' && profiler && m.path) {
        const { profile } = await profiler.post('Profiler.stop');
        profiler.disconnect();
        profiler = undefined;
        await mkdir(dirname(m.path), { recursive: true });
        await writeFile(m.path, JSON.stringify(profile));
        process.send?.({ type: 'profile-stopped', path: m.path });
      } else if (m?.type === 'exit') {
        await daemon.close();
        process.exit(0);
      }
    })().catch(failChild);
  });
  process.send?.({ type: 'ready', url: daemon.api!.url });
}

// The benchmark went away (interrupted): so does this process.
process.on('disconnect', () => process.exit(1));
main().catch(failChild);
