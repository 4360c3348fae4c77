/** `ftp-sync config check`: validates a configuration file and prints a summary, secrets hidden. */
import type { Command } from 'commander';
import { configOption, examples, readConfig, stdout } from './common.js';
import { formatBytes, formatDuration } from './render.js';

async function configCheckCommand(opts: { config?: string }): Promise<void> {
  const c = await readConfig(opts.config);
  const out = stdout();
  out.line(
    `configuration OK: ${c.tenants.length} tenant(s), bucket ${c.s3.bucket}, vela ${c.vela.enabled ? 'on' : 'off'}`,
  );
  for (const t of c.tenants) {
    const secure = t.sftp
      ? t.sftp.verifyHostKey
        ? `SFTP, host key ${t.sftp.hostKeyFingerprint}`
        : out.style.yellow('SFTP (warning: host key not verified)')
      : t.ftp?.secure === false
        ? out.style.yellow('plain FTP (warning: unencrypted)')
        : `FTPS ${t.ftp?.secure}`;
    out.line(
      `  ${t.org}: ${t.source.host}:${t.source.port} ${secure}, dirs ${t.dirs.join(', ')}, every ${formatDuration(t.pollInterval)}, ` +
        `max ${t.maxConnections} connections, files up to ${formatBytes(t.maxFileSize)}` +
        (t.maxBandwidth ? `, at most ${formatBytes(t.maxBandwidth)}/s` : '') +
        (t.enabled ? '' : ', disabled') +
        (t.afterSync === 'keep'
          ? ''
          : `, after sync: ${t.afterSync === 'move' ? `move to ${t.moveTo}` : 'delete'}`),
    );
  }
  if (!c.vela.enabled)
    out.line(out.style.yellow('  warning: vela.enabled is false: no minute-allocation check'));
}

/** `config check`. */
export function registerConfig(program: Command): void {
  program
    .command('config')
    .description('configuration commands')
    .command('check')
    .description('validate a configuration file and print a summary (secrets hidden)')
    .addOption(configOption())
    .addHelpText(
      'after',
      `\nExits with 2 and names the field when the file is not valid.${examples('ftp-sync config check -c config/ftp-sync.yaml')}`,
    )
    .action(configCheckCommand);
}
