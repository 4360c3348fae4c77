#!/usr/bin/env node
/**
 * The command line: the one place that prints for humans. This file only builds the program; each
 * command's action lives in src/cli/<command>.ts and all formatting in src/cli/render.ts.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { BATCH_EXIT, batchImportCommand, batchStatusCommand } from './cli/batch.js';
import { CliError, collect, configOption, parseDurationArg, parseIntArg } from './cli/common.js';
import { configCheckCommand } from './cli/config-check.js';
import { RESYNC_EXIT, resyncCommand } from './cli/resync.js';
import { startCommand } from './cli/start.js';
import { statusCommand } from './cli/status.js';
import {
  tenantsAddCommand,
  tenantsListCommand,
  tenantsRemoveCommand,
  tenantsTestCommand,
  tenantsUpdateCommand,
} from './cli/tenants.js';
import { tokensCreateCommand, tokensListCommand, tokensRevokeCommand } from './cli/tokens.js';
import { ConfigError } from './config.js';
import { toError } from './errors.js';

/** package.json's version: two levels up from src/cli.ts, three from dist/src/cli.js. */
function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    const file = fileURLToPath(new URL(up, import.meta.url));
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'ftp-sync' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;

const orgOption = () => new Option('--org <id>', 'tenant (org_id)').makeOptionMandatory();

export function buildProgram(): Command {
  const program = new Command('ftp-sync')
    .description('Multi-tenant FTP → S3 synchronisation daemon for Vela call data')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .addHelpText(
      'after',
      `
Environment:
  FTPSYNC_CONFIG      configuration file when -c is not given (default config/ftp-sync.yaml)
  FTPSYNC_SECRET_KEY  32-byte key (openssl rand -hex 32) that encrypts onboarded tenants' passwords
  NO_COLOR            no colours even on a terminal

Exit codes:
  0    success
  1    failure (a command that failed, a connection test that failed, a bad argument)
  2    configuration error (every problem listed, each naming its field)
  3    resync finished with parked files (held back on purpose, none failed)
  130  interrupted: Ctrl-C while resync follows its batch (the batch goes on in the worker), or a
       second signal to start (exits at once; the first one shuts down cleanly with 0)
${examples('ftp-sync config check -c config/ftp-sync.yaml', 'ftp-sync status', 'ftp-sync resync --org acme --since 2024-03-01', 'ftp-sync tenants list')}`,
    );

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

  program
    .command('status')
    .description('per tenant: health, last poll, files synced, queued/active/failed/parked, errors')
    .addOption(configOption())
    .option('--org <id>', 'only this tenant')
    .option('--json', 'print the status as JSON (stable field names, for scripts)')
    .addHelpText(
      'after',
      examples(
        'ftp-sync status',
        'ftp-sync status --org acme',
        'ftp-sync status --json | jq \'.tenants[] | select(.health != "ok") | .org\'',
      ),
    )
    .action(statusCommand);

  program
    .command('resync')
    .description(
      'list a tenant now, queue what is not in S3 and release its parked files; then follow the batch',
    )
    .addOption(configOption())
    .addOption(orgOption())
    .option(
      '--path <glob>',
      'only paths matching this glob (relative to the source root, e.g. "calls/2024-03/**")',
    )
    .option('--since <date>', 'only files modified on or after this date (YYYY-MM-DD or ISO time)')
    .option('--force', 'queue every matching file, even those already in S3 (uploads them again)')
    .option('--dry-run', 'print what would be queued (count, size, the first paths) and queue nothing')
    .option('--no-wait', 'queue and exit without following the batch')
    .addHelpText(
      'after',
      `
A running worker (ftp-sync start, in another process) does the transfers; resync queues them and,
unless --no-wait, shows progress until every file is uploaded, failed or parked.

Exit codes:
  ${RESYNC_EXIT.ok}    every file uploaded (or already in S3)
  ${RESYNC_EXIT.failed}    some files failed (listed as path: reason)
  2    configuration error
  ${RESYNC_EXIT.parked}    none failed but some were parked (allocation exceeded, missing call metadata):
       held back on purpose and retried by the worker; a later resync releases them again
  ${RESYNC_EXIT.interrupted}  interrupted (Ctrl-C); the batch goes on in the worker
${examples(
  'ftp-sync resync --org acme --dry-run',
  'ftp-sync resync --org acme --path "calls/2024-03/**" --since 2024-03-01',
  'ftp-sync resync --org acme --force --no-wait',
)}`,
    )
    .action(resyncCommand);

  const tokens = program
    .command('tokens')
    .description('upload API tokens per org (stored as hashes; an org with a token can use the API)')
    .addHelpText('after', examples('ftp-sync tokens create --org acme', 'ftp-sync tokens list --org acme'));
  tokens
    .command('create')
    .description(
      'make a token for the org (registering it for the API); printed once, alone on the last line',
    )
    .addOption(configOption())
    .addOption(orgOption())
    .option('--json', 'print {"token": …}')
    .addHelpText(
      'after',
      examples('ftp-sync tokens create --org acme', 'TOKEN=$(ftp-sync tokens create --org acme | tail -n 1)'),
    )
    .action(tokensCreateCommand);
  tokens
    .command('list')
    .description("tokens' ids, orgs and creation times (never a token)")
    .addOption(configOption())
    .option('--org <id>', 'only this org')
    .option('--json', 'print as JSON')
    .addHelpText('after', examples('ftp-sync tokens list', 'ftp-sync tokens list --org acme --json'))
    .action(tokensListCommand);
  tokens
    .command('revoke')
    .description('revoke one token of the org (its requests get 401 at once)')
    .addOption(configOption())
    .addOption(orgOption())
    .requiredOption('--id <id>', 'the token id (tokens list)')
    .addHelpText('after', examples('ftp-sync tokens revoke --org acme --id Zk3xQ0aB1cD'))
    .action(tokensRevokeCommand);

  const tenants = program
    .command('tenants')
    .description('list, onboard, remove and test tenants')
    .addHelpText('after', examples('ftp-sync tenants list', 'ftp-sync tenants test --org acme'));

  tenants
    .command('list')
    .description('every tenant: from the configuration file and onboarded ones (never a password)')
    .addOption(configOption())
    .option('--json', 'print as JSON')
    .addHelpText('after', examples('ftp-sync tenants list', 'ftp-sync tenants list --json'))
    .action(tenantsListCommand);

  const add = tenants
    .command('add')
    .description('onboard a tenant at run time; its password is read from stdin and stored encrypted')
    .addOption(configOption())
    .addOption(orgOption())
    .requiredOption('--host <host>', 'FTP server host name')
    .requiredOption('--user <user>', 'FTP user name')
    .option('--password-stdin', 'read the password from stdin (all of it, one trailing newline removed)')
    .requiredOption('--dir <dir>', 'directory to watch (repeat for more)', collect);
  tenantSettingsOptions(add)
    .addHelpText(
      'after',
      `
Needs FTPSYNC_SECRET_KEY in the environment (the same key as the daemons). Adding an org that
exists replaces its settings and password.
${examples(
  'printf %s "$ACME_PASSWORD" | ftp-sync tenants add --org acme --host ftp.acme.example \\',
  '    --user vela --password-stdin --dir /calls --dir /records --max-connections 2',
  'ftp-sync tenants add --org beta --host 10.0.0.5 --secure false --user up --password-stdin \\',
  '    --dir / --include "**/*.wav" --poll-interval 5m < password.txt',
)}`,
    )
    .action(tenantsAddCommand);

  const update = tenants
    .command('update')
    .description('change only the given settings of an onboarded tenant; its password is kept unless given')
    .addOption(configOption())
    .addOption(orgOption())
    .option('--host <host>', 'FTP server host name')
    .option('--user <user>', 'FTP user name (the stored password is kept unless --password-stdin)')
    .option('--password-stdin', 'a new password, read from stdin (all of it, one trailing newline removed)')
    .option('--dir <dir>', 'directories to watch, replacing the stored ones (repeat for more)', collect)
    .option('--enabled', 'poll the tenant again (after --disabled)');
  tenantSettingsOptions(update)
    .addHelpText(
      'after',
      `
Onboarded tenants only (a tenant of the configuration file is changed there). Running daemons
pick the change up within seconds, without a restart; new credentials (or server) also end the
tenant's poll backoff, so the next poll logs in at once. Lists (--dir, --include, --exclude)
replace the stored ones; --settings-json is merged key by key into the stored settings.
${examples(
  'ftp-sync tenants update --org acme --after-sync delete --default-email calls@acme.example',
  'printf %s "$NEW_PASSWORD" | ftp-sync tenants update --org acme --password-stdin',
  'ftp-sync tenants update --org acme --settings-json \'{"metadata":{"columns":{"email":["agent"]}}}\'',
)}`,
    )
    .action(tenantsUpdateCommand);

  tenants
    .command('remove')
    .description('remove an onboarded tenant and its credentials (sync state and S3 objects are kept)')
    .addOption(configOption())
    .addOption(orgOption())
    .addHelpText('after', examples('ftp-sync tenants remove --org acme'))
    .action(tenantsRemoveCommand);

  tenants
    .command('test')
    .description('log in, list the directories and count matching files; exits 1 when it fails')
    .addOption(configOption())
    .addOption(orgOption())
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
A failure names its class: dns, refused, too-many-connections, busy, tls, login,
missing-directory, timeout, tenant or other.
${examples('ftp-sync tenants test --org acme', 'ftp-sync tenants test --org acme --json')}`,
    )
    .action(tenantsTestCommand);

  const batch = program
    .command('batch')
    .description('zip batches: import an archive, see what became of each entry');
  batch
    .command('import')
    .description('upload a zip (or use one already in S3) and queue its expansion; then follow it')
    .argument('<file>', 'a local .zip, or s3://<bucket>/<key> of one already in the configured bucket')
    .addOption(configOption())
    .addOption(orgOption())
    .option('--no-wait', 'queue and exit without following the batch')
    .addHelpText(
      'after',
      `
A running worker (ftp-sync start) expands the archive; import uploads it, queues it and, unless
--no-wait, follows it until every entry has an outcome.

Exit codes:
  ${BATCH_EXIT.ok}    every entry synced, a duplicate or ignored
  ${BATCH_EXIT.failed}    the archive was refused, or some entries were rejected (see batch status)
  2    configuration error
  ${BATCH_EXIT.parked}    some recordings were parked (allocation exceeded); the worker retries them
${examples('ftp-sync batch import --org acme export-2024-03.zip', 'ftp-sync batch import --org acme s3://calls/acme/uploads/export.zip')}`,
    )
    .action(batchImportCommand);
  batch
    .command('status')
    .description('batches (newest first) with counts by outcome; one batch with each entry and its reason')
    .argument('[id]', 'a batch id (b-<org>-<hash>)')
    .addOption(configOption())
    .option('--org <id>', 'only this tenant')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      examples('ftp-sync batch status --org acme', 'ftp-sync batch status b-acme-0123456789abcdef --json'),
    )
    .action(batchStatusCommand);

  oneLineErrors(program);
  return program;
}

/** The per-tenant settings `tenants add` and `tenants update` both take (checked by the tenant schema). */
function tenantSettingsOptions(cmd: Command): Command {
  return cmd
    .option('--port <port>', 'FTP server port (default 21, 990 with --secure implicit)', parseIntArg)
    .addOption(
      new Option('--secure <mode>', 'FTPS mode (default explicit); false is plain FTP (unencrypted)').choices(
        ['explicit', 'implicit', 'false'],
      ),
    )
    .option(
      '--include <glob>',
      'only files matching (repeat for more; default: recordings and call records)',
      collect,
    )
    .option('--exclude <glob>', 'skip files matching (repeat for more)', collect)
    .option('--max-connections <n>', 'logins at once on this server, all replicas together', parseIntArg)
    .option('--poll-interval <duration>', 'how often the source is listed (e.g. 60s, 5m)', parseDurationArg)
    .option(
      '--min-file-age <duration>',
      'skip files changed more recently than this (e.g. 30s)',
      parseDurationArg,
    )
    .option('--max-file-size <size>', 'skip larger files (e.g. 2GiB)')
    .option('--disabled', 'keep the tenant but do not poll it')
    .addOption(
      new Option('--after-sync <action>', 'what happens to a source file once in S3').choices([
        'keep',
        'delete',
        'move',
      ]),
    )
    .option('--move-to <template>', 'with --after-sync move: the target path (e.g. /archive/{path})')
    .option('--default-email <email>', 'metadata: the email when no manifest row or pattern gives one')
    .option(
      '--pattern <regex>',
      'metadata: regular expression with named groups email and date, on file names',
    )
    .addOption(
      new Option('--date-format <format>', 'metadata: how dates are written').choices([
        'iso',
        'DD/MM/YYYY',
        'MM/DD/YYYY',
        'YYYY/MM/DD',
      ]),
    )
    .option('--date-from-mtime', 'metadata: use the modification date when nothing else gives a date')
    .option('--no-date-from-mtime', 'metadata: never use the modification date as the date of call')
    .option('--require-manifest', 'metadata: hold a recording until its manifest row arrives')
    .option('--no-require-manifest', 'metadata: upload a recording without waiting for a manifest row')
    .option(
      '--manifest-wait <duration>',
      'metadata: how long --require-manifest holds a recording',
      parseDurationArg,
    )
    .option(
      '--settings-json <json>',
      'a partial tenant object as in the configuration file (e.g. {"metadata":{"columns":{…}}}); the options win',
    );
}

/** Commander's usage errors as one line with a hint: `ftp-sync: … (see: ftp-sync resync --help)`. */
function oneLineErrors(cmd: Command, path: string[] = []): void {
  const names = [...path, cmd.name()];
  cmd.configureOutput({
    outputError: (str, write) => {
      const message = str
        .replace(/^error: /, '')
        .replace(/\s*\n\s*/g, ' ')
        .trim();
      write(`ftp-sync: ${message} (see: ${names.join(' ')} --help)\n`);
    },
  });
  for (const sub of cmd.commands) oneLineErrors(sub, names);
}

/** The message and exit code of anything a command threw. */
function describeError(err: unknown): { message: string; exitCode: number } {
  if (err instanceof ConfigError) {
    const lines = err.message.split('\n');
    const n = err.issues.length;
    const message =
      lines.length === 1
        ? `ftp-sync: configuration error: ${lines[0]}`
        : `ftp-sync: configuration error${n > 1 ? ` (${n} problems)` : ''}:\n${lines.map((l) => `  ${l}`).join('\n')}`;
    return { message, exitCode: err.exitCode };
  }
  if (err instanceof CliError) {
    return {
      message: `ftp-sync: ${err.message}${err.hint ? ` (see: ${err.hint})` : ''}`,
      exitCode: err.exitCode,
    };
  }
  return { message: `ftp-sync: ${toError(err).message}`, exitCode: 1 };
}

export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const { message, exitCode } = describeError(err);
    console.error(message);
    process.exitCode = exitCode;
    // Commands close what they open; should something still hold the process, do not hang.
    setTimeout(() => process.exit(exitCode), 2_000).unref();
  }
}

/** True when this file is the program being run (not imported by a test); follows the bin symlink. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) await main();
