/** `ftp-sync start`: runs the daemon until SIGTERM/SIGINT; a second signal exits at once. */
import { makeLogger } from '../log.js';
import { type Role, startDaemon } from '../main.js';
import { readConfig } from './common.js';

export async function startCommand(opts: { config?: string; role: Role }): Promise<void> {
  const config = await readConfig(opts.config);
  const log = makeLogger({ level: config.log.level });
  const daemon = await startDaemon(config, { role: opts.role, log });
  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting at once');
      process.exit(130);
    }
    log.info({ signal }, 'shutting down: finishing transfers');
    daemon.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
