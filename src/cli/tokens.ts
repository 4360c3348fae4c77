/**
 * `ftp-sync tokens create | list | revoke`: upload API tokens. A token is printed once, by `create`,
 * alone on the last line (or as `{"token": …}` with `--json`); only its hash is stored.
 */
import type { Command } from 'commander';
import { createToken, listTokens, revokeToken } from '../ops/tokens.js';
import { CliError, configOption, examples, json, orgOption, readConfig, stdout, withOps } from './common.js';
import { table } from './render.js';

const asCli = (err: unknown) => new CliError((err as Error).message);

async function tokensCreateCommand(opts: { config?: string; org: string; json?: boolean }): Promise<void> {
  const config = await readConfig(opts.config, { sourceCredentials: 'optional' });
  const { token, info } = await withOps(config, (ctx) => createToken(ctx, opts.org)).catch((err) => {
    throw err instanceof CliError ? err : asCli(err);
  });
  const out = stdout();
  if (opts.json) {
    out.line(JSON.stringify({ token }));
    return;
  }
  out.line(`created token ${info.id} for org ${info.org}; it is shown only now:`);
  out.line(token);
}

async function tokensListCommand(opts: { config?: string; org?: string; json?: boolean }): Promise<void> {
  const config = await readConfig(opts.config, { sourceCredentials: 'optional' });
  const tokens = await withOps(config, (ctx) => listTokens(ctx, opts.org)).catch((err) => {
    throw err instanceof CliError ? err : asCli(err);
  });
  const out = stdout();
  const rows = tokens.map((t) => ({ id: t.id, org: t.org, createdAt: new Date(t.createdAt).toISOString() }));
  if (opts.json) {
    out.line(json(rows));
    return;
  }
  if (!rows.length) {
    out.line(`no tokens${opts.org ? ` for org ${opts.org}` : ''} (ftp-sync tokens create --org ID)`);
    return;
  }
  for (const line of table([
    ['ID', 'ORG', 'CREATED'].map(out.style.bold),
    ...rows.map((r) => [r.id, r.org, r.createdAt]),
  ]))
    out.line(line);
}

async function tokensRevokeCommand(opts: { config?: string; org: string; id: string }): Promise<void> {
  const config = await readConfig(opts.config, { sourceCredentials: 'optional' });
  await withOps(config, (ctx) => revokeToken(ctx, opts.org, opts.id)).catch((err) => {
    throw err instanceof CliError ? err : asCli(err);
  });
  stdout().line(`revoked token ${opts.id} of org ${opts.org}`);
}

/** `tokens create | list | revoke`. */
export function registerTokens(program: Command): void {
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
}
