/** The per-tenant options that `tenants add` and `tenants update` share. */
import { type Command, Option } from 'commander';
import { collect, parseDurationArg, parseIntArg } from './common.js';

/** The per-tenant settings `tenants add` and `tenants update` both take (checked by the tenant schema). */
export function tenantSettingsOptions(cmd: Command): Command {
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
