/**
 * `ftp-sync tenants list | add | update | remove | test`. A password is only ever read from stdin, stored
 * encrypted (FTPSYNC_SECRET_KEY) and never printed.
 */
import type { Command } from 'commander';
import { ConfigError } from '../config.js';
import {
  addTenant,
  listTenants,
  removeTenant,
  type TenantSettingsInput,
  type TenantSummary,
  type TestReport,
  testTenant,
  updateTenant,
} from '../ops/tenants.js';
import {
  CliError,
  collect,
  configOption,
  examples,
  json,
  type Output,
  orgOption,
  readConfig,
  readStdin,
  stdout,
  withOps,
} from './common.js';
import { formatBytes, formatCount, formatDuration, table } from './render.js';
import { tenantSettingsOptions } from './tenant-options.js';

const secureLabel = (s: TenantSummary['secure']) => (s === false ? 'no' : s);

async function tenantsListCommand(opts: { config?: string; json?: boolean }): Promise<void> {
  const config = await readConfig(opts.config, { sourceCredentials: 'optional' });
  const tenants = await withOps(config, (ctx) => listTenants(ctx));
  const out = stdout();
  if (opts.json) {
    out.line(json(tenants));
    return;
  }
  if (!tenants.length) {
    out.line('no tenants (add them to the configuration file, or: ftp-sync tenants add --help)');
    return;
  }
  const { style } = out;
  const rows = [
    ['ORG', 'ORIGIN', 'HOST', 'SECURE', 'USER', 'DIRS', 'EVERY', 'MAX CONN', 'ENABLED'].map(style.bold),
    ...tenants.map((t) => [
      t.org,
      t.origin,
      `${t.host}:${t.port}`,
      t.secure === false ? style.yellow('no') : String(secureLabel(t.secure)),
      t.user ?? style.dim('anonymous'),
      t.dirs.join(','),
      formatDuration(t.pollInterval),
      String(t.maxConnections),
      t.enabled ? 'yes' : style.dim('no'),
    ]),
  ];
  for (const line of table(rows, ['left', 'left', 'left', 'left', 'left', 'left', 'right', 'right']))
    out.line(line);
}

/**
 * The per-tenant options `tenants add` and `tenants update` share: the operation's settings under
 * commander's names (`--dir` → `dir`, `--disabled`, `--settings-json`, `--password-stdin`).
 */
export interface TenantSettingsOptions extends Omit<TenantSettingsInput, 'dirs' | 'settings'> {
  config?: string;
  org: string;
  user?: string;
  passwordStdin?: boolean;
  dir?: string[];
  disabled?: boolean;
  settingsJson?: string;
}

function settingsInput(opts: TenantSettingsOptions, command: string): TenantSettingsInput {
  let settings: Record<string, unknown> | undefined;
  if (opts.settingsJson !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(opts.settingsJson);
    } catch (err) {
      throw new CliError(`--settings-json: not JSON: ${(err as Error).message}`, {
        exitCode: 2,
        hint: `ftp-sync tenants ${command} --help`,
      });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new CliError(
        '--settings-json: expected a JSON object (a partial tenant, as in the configuration file)',
        {
          exitCode: 2,
          hint: `ftp-sync tenants ${command} --help`,
        },
      );
    }
    settings = parsed as Record<string, unknown>;
  }
  return {
    host: opts.host,
    port: opts.port,
    secure: opts.secure,
    dirs: opts.dir,
    include: opts.include,
    exclude: opts.exclude,
    maxConnections: opts.maxConnections,
    pollInterval: opts.pollInterval,
    minFileAge: opts.minFileAge,
    maxFileSize: opts.maxFileSize,
    enabled: opts.disabled ? false : opts.enabled ? true : undefined,
    afterSync: opts.afterSync,
    moveTo: opts.moveTo,
    defaultEmail: opts.defaultEmail,
    pattern: opts.pattern,
    dateFormat: opts.dateFormat,
    dateFromMtime: opts.dateFromMtime,
    requireManifest: opts.requireManifest,
    manifestWait: opts.manifestWait,
    settings,
  };
}

async function readPassword(command: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('password (then Enter and Ctrl-D): ');
  const password = (await readStdin()).replace(/\r?\n$/, '');
  if (!password)
    throw new CliError('the password read from stdin is empty', {
      hint: `ftp-sync tenants ${command} --help`,
    });
  return password;
}

function describeTenant(out: Output, t: TenantSummary): string {
  const secure =
    t.secure === 'sftp'
      ? 'SFTP'
      : t.secure === false
        ? out.style.yellow('plain FTP (unencrypted)')
        : `FTPS ${t.secure}`;
  return (
    `${t.host}:${t.port} ${secure}, user ${t.user}, dirs ${t.dirs.join(', ')}, ` +
    `every ${formatDuration(t.pollInterval)}, max ${t.maxConnections} connections, after sync ${t.afterSync}` +
    `${t.afterSync === 'move' && t.moveTo ? ` to ${t.moveTo}` : ''}${t.enabled ? '' : ', disabled'}`
  );
}

/** Settings given on the command line: a usage error of this command (exit 2), not of the config file. */
const asUsageError = (command: string) => (err: unknown) => {
  if (err instanceof ConfigError)
    throw new CliError(`cannot ${command} tenant: ${err.message}`, {
      exitCode: 2,
      hint: `ftp-sync tenants ${command} --help`,
    });
  throw err;
};

async function tenantsAddCommand(opts: TenantSettingsOptions): Promise<void> {
  if (!opts.passwordStdin) {
    throw new CliError(
      'tenants add needs --password-stdin: a password is read from stdin, never from the command line',
      {
        hint: 'ftp-sync tenants add --help',
      },
    );
  }
  const input = settingsInput(opts, 'add');
  const config = await readConfig(opts.config);
  if (!config.secretKey) {
    throw new ConfigError(
      'FTPSYNC_SECRET_KEY is not set: the passwords of onboarded tenants are stored encrypted with it (make one: openssl rand -hex 32)',
    );
  }
  const password = await readPassword('add');

  const out = stdout();
  await withOps(config, async (ctx) => {
    // A key that does not open the tenants already stored would leave them unreadable beside the new one.
    await ctx.tenants.verifyKey();
    const existed = (await ctx.tenants.get(opts.org))?.origin === 'onboarded';
    const t = await addTenant(ctx, {
      ...input,
      org: opts.org,
      host: opts.host!,
      user: opts.user!,
      password,
      dirs: opts.dir ?? [],
    }).catch(asUsageError('add'));
    out.line(`${existed ? 'replaced' : 'added'} tenant ${t.org}: ${describeTenant(out, t)}`);
    out.line(
      `running daemons pick it up at their next reconcile; check it now with: ftp-sync tenants test --org ${t.org}`,
    );
  });
}

async function tenantsUpdateCommand(opts: TenantSettingsOptions): Promise<void> {
  const input = settingsInput(opts, 'update');
  const config = await readConfig(opts.config);
  if (!config.secretKey) {
    throw new ConfigError(
      'FTPSYNC_SECRET_KEY is not set: the passwords of onboarded tenants are stored encrypted with it (make one: openssl rand -hex 32)',
    );
  }
  const password = opts.passwordStdin ? await readPassword('update') : undefined;
  const out = stdout();
  await withOps(config, async (ctx) => {
    const current = await ctx.tenants.get(opts.org);
    if (current?.origin === 'config') {
      throw new CliError(
        `tenant "${opts.org}" is defined in the configuration file: edit it there (tenants update changes onboarded tenants only)`,
        { hint: 'ftp-sync tenants list' },
      );
    }
    const t = await updateTenant(ctx, { ...input, org: opts.org, user: opts.user, password }).catch(
      asUsageError('update'),
    );
    if (!t) throw new CliError(`no onboarded tenant "${opts.org}"`, { hint: 'ftp-sync tenants list' });
    out.line(`updated tenant ${t.org}: ${describeTenant(out, t)}${password ? ' (new password)' : ''}`);
    out.line('running daemons pick the change up within seconds, without a restart');
  });
}

async function tenantsRemoveCommand(opts: { config?: string; org: string }): Promise<void> {
  const config = await readConfig(opts.config, { sourceCredentials: 'optional' });
  const removed = await withOps(config, (ctx) => removeTenant(ctx, opts.org));
  if (!removed) throw new CliError(`no onboarded tenant "${opts.org}"`, { hint: 'ftp-sync tenants list' });
  stdout().line(`removed tenant ${opts.org} and its credentials (its sync state and objects in S3 are kept)`);
}

async function tenantsTestCommand(opts: { config?: string; org: string; json?: boolean }): Promise<void> {
  const config = await readConfig(opts.config);
  const report = await withOps(config, (ctx) => testTenant(ctx, opts.org));
  if (report.failure === 'unknown-tenant') {
    throw new CliError(report.message, { hint: 'ftp-sync tenants list' });
  }
  const out = stdout();
  if (opts.json) out.line(json(report));
  else printReport(out, report);
  if (!report.ok) process.exitCode = 1;
}

function printReport(out: Output, r: TestReport): void {
  const { style } = out;
  if (!r.ok) {
    out.line(`${r.org}: ${style.red(`FAILED (${r.failure})`)} after ${formatDuration(r.ms)}: ${r.message}`);
    return;
  }
  out.line(`${r.org}: ${style.green('ok')} in ${formatDuration(r.ms)}: ${r.message}`);
  if (r.tls) {
    const cert = r.tls.authorized ? 'certificate verified' : style.yellow('certificate NOT verified');
    out.line(
      `  TLS: ${r.tls.protocol}, ${r.tls.cipher}, ${cert}${r.tls.subject ? `, subject ${r.tls.subject}` : ''}` +
        `${r.tls.fingerprint ? `, SHA-256 ${r.tls.fingerprint}` : ''}`,
    );
  } else {
    out.line(`  TLS: ${style.yellow('none (plain FTP: the password travels unencrypted)')}`);
  }
  if (r.listingFormat) {
    out.line(
      `  listing: ${r.listingFormat}${r.listingFormat === 'LIST' ? ' (modification times without seconds or timezone)' : ' (exact UTC times)'}`,
    );
  }
  out.line(`  matched: ${formatCount(r.matched ?? 0)} file(s)`);
  const sample = r.sample ?? [];
  for (const row of table(
    sample.map((f) => [`    ${f.path}`, formatBytes(f.size), f.mtime]),
    ['left', 'right'],
  )) {
    out.line(row);
  }
  if ((r.matched ?? 0) > sample.length)
    out.line(`    … and ${formatCount((r.matched ?? 0) - sample.length)} more`);
}

/** `tenants list | add | update | remove | test`. */
export function registerTenants(program: Command): void {
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
}
