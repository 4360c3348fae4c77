#!/usr/bin/env node
/**
 * The command line: the one place that prints for humans. This file only builds the program; each
 * command's action lives in src/cli/<command>.ts and all formatting in src/cli/render.ts.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { registerBatch } from './cli/batch.js';
import { CliError, examples } from './cli/common.js';
import { registerConfig } from './cli/config-check.js';
import { registerResync } from './cli/resync.js';
import { registerStart } from './cli/start.js';
import { registerStatus } from './cli/status.js';
import { registerTenants } from './cli/tenants.js';
import { registerTokens } from './cli/tokens.js';
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

  for (const register of [
    registerStart,
    registerConfig,
    registerStatus,
    registerResync,
    registerTokens,
    registerTenants,
    registerBatch,
  ])
    register(program);
  oneLineErrors(program);
  return program;
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
