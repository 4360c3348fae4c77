/** `ftp-sync start`: runs the daemon until SIGTERM/SIGINT; a second signal exits at once. */
import { type Command, Option } from 'commander';
import { makeLogger } from '../log.js';
import { type Role, startDaemon } from '../main.js';
import { configOption, examples, readConfig } from './common.js';

async function startCommand(opts: { config?: string; role: Role }): Promise<void> {
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

/** `start` and its options. */
export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the daemon (poller, worker or both) until SIGTERM/SIGINT')
    .addOption(configOption())
    .addOption(
      new Option('--role <role>', 'which roles this process runs')
        .choices(['all', 'poller', 'worker', 'api'])
        .default('all'),
    )
    .addHelpText(
      'after',
      examples(
        'ftp-sync start --config config/ftp-sync.yaml',
        'ftp-sync start --role worker',
        'ftp-sync start --role api    # the upload API only (api: host, port in the configuration)',
      ),
    )
    .action(startCommand);
}
