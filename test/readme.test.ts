/**
 * Every command the README prints works as printed. The command lines are read from the README
 * itself (fenced blocks and inline code): `ftp-sync …`, `npx ftp-sync …` and `npm run …`.
 * - Safe ones are run for real: `--help`, `--version`, and the quick start's `cp` + `config check`
 *   against config/example.yaml with the environment its header says it needs (in a temp folder).
 * - The others (start, status, resync, tenants …, npm run demo …) would need servers: each must name a
 *   command the program has, with options that command has (npm run: a script of package.json, and
 *   for the demo, flags its --help lists).
 * `npx ftp-sync` itself (the package's bin, no build step) is run once from the repository root.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli.js';
import { type TempDir, tempDir } from './support/fs.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'ftp-sync.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...env };
    delete childEnv.FTPSYNC_CONFIG;
    execFile(file, args, { cwd, env: childEnv, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Command lines of the README: fenced code blocks (continuations joined) and inline code spans. */
function readmeCommands(markdown: string): string[] {
  const lines: string[] = [];
  const blocks = markdown.matchAll(/^```[a-z]*\n([\s\S]*?)^```/gm);
  for (const [, body] of blocks) {
    for (const line of body!.replace(/\\\n\s*/g, ' ').split('\n')) lines.push(line);
  }
  const prose = markdown.replace(/^```[a-z]*\n[\s\S]*?^```/gm, '');
  for (const [, span] of prose.matchAll(/`([^`\n]+)`/g)) lines.push(span!);
  const out = new Set<string>();
  for (const raw of lines) {
    const line = raw
      .replace(/\s+#\s.*$/, '')
      .replace(/^\$\s+/, '')
      .trim();
    // `echo … | ftp-sync …`, `a && b`: each command of a pipeline or list.
    for (const part of line.split(/\s+(?:\||&&|;)\s+/)) {
      if (/^(npx ftp-sync|ftp-sync|npm run)(\s|$)/.test(part)) out.add(part.trim());
    }
  }
  return [...out];
}

/** Shell-like words; quotes removed. Good enough for the README's command lines. */
function words(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/** The subcommand a README line names (`tenants list|add` → each alternative) and its options. */
function resolveCommand(program: Command, args: string[]): { cmds: Command[]; options: string[] } {
  let cmds = [program];
  const options: string[] = [];
  for (const w of args.map((a) => a.replace(/^\[|\]$/g, ''))) {
    if (w.startsWith('-')) {
      options.push(w.split('=')[0]!);
      continue;
    }
    const next = cmds.flatMap((c) =>
      w
        .split('|')
        .map((alt) => c.commands.find((s) => s.name() === alt))
        .filter((s): s is Command => s !== undefined),
    );
    // A word that is no subcommand is an argument or an option's value.
    if (next.length > 0) cmds = next;
  }
  return { cmds, options };
}

const knows = (cmd: Command, flag: string) =>
  ['--help', '-h'].includes(flag) ||
  (cmd.parent === null && ['--version', '-V'].includes(flag)) ||
  cmd.options.some((o) => o.long === flag || o.short === flag || o.long === flag.replace(/^--no-/, '--'));

let readme: string;
let commands: string[];
let dir: TempDir;

beforeAll(async () => {
  readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  commands = readmeCommands(readme);
  dir = await tempDir('readme');
  await mkdir(join(dir.path, 'config'));
  await copyFile(join(ROOT, 'config', 'example.yaml'), join(dir.path, 'config', 'example.yaml'));
});

afterAll(async () => {
  await dir?.cleanup();
});

describe('README commands', () => {
  it('finds the commands (the extraction itself works)', () => {
    expect(commands).toEqual(
      expect.arrayContaining([
        'npx ftp-sync --help',
        'npx ftp-sync config check -c config/ftp-sync.yaml',
        'ftp-sync status [--org ID] [--json]',
        'npm run demo',
      ]),
    );
    expect(commands.length).toBeGreaterThan(15);
  });

  it('npx ftp-sync --help and --version work from the repository, without a build', async () => {
    const help = await run('npx', ['--no-install', 'ftp-sync', '--help'], ROOT);
    expect(help.stderr).toBe('');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: ftp-sync');
    expect(help.stdout).toMatch(/^\s+130\s+interrupted/m);
    // The README's exit codes are the help's.
    const helpCodes = [
      ...help.stdout.slice(help.stdout.indexOf('Exit codes:')).matchAll(/^ {2}(\d+) {2,}/gm),
    ];
    const readmeCodes = /Exit codes: ([^\n]*(?:\n[^\n]+)*)/.exec(readme)?.[1]?.match(/(?:^|; )(\d+) /g);
    expect(readmeCodes?.map((c) => Number(c.replace(/\D/g, '')))).toEqual(helpCodes.map((m) => Number(m[1])));
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const version = await run('npx', ['--no-install', 'ftp-sync', '--version'], ROOT);
    expect(version).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('runs the safe ones as printed (help, --version, the quick start config check)', async () => {
    // The variables config/example.yaml's header says it needs: that list must be complete too.
    const example = await readFile(join(ROOT, 'config', 'example.yaml'), 'utf8');
    const needs = /Environment variables this example needs:\n#\s+(.+)\n/.exec(example)?.[1];
    expect(needs).toBeDefined();
    const env = Object.fromEntries(
      needs!.split(/,\s*/).map((name) => [name.trim(), `value-of-${name.trim()}`]),
    );
    // The quick start copies the example first.
    expect(readme).toContain('cp config/example.yaml config/ftp-sync.yaml');
    await copyFile(join(dir.path, 'config', 'example.yaml'), join(dir.path, 'config', 'ftp-sync.yaml'));

    const ran: string[] = [];
    for (const command of commands) {
      const w = words(command);
      if (w[0] === 'npm') continue;
      const args = w[0] === 'npx' ? w.slice(2) : w.slice(1);
      const safe =
        args.includes('--help') ||
        args.includes('--version') ||
        (args[0] === 'config' && args[1] === 'check' && !args.some((a) => /[[\]|]/.test(a)));
      if (!safe) continue;
      const r = await run(process.execPath, [BIN, ...args], dir.path, env);
      expect({ command, code: r.code, stderr: r.stderr }).toEqual({ command, code: 0, stderr: '' });
      if (args[0] === 'config') expect(r.stdout).toMatch(/^configuration OK: 2 tenant\(s\)/);
      ran.push(command);
    }
    expect(ran).toEqual(
      expect.arrayContaining([
        'npx ftp-sync --help',
        'npx ftp-sync config check -c config/ftp-sync.yaml',
        'ftp-sync --version',
      ]),
    );

    // Without the environment: every missing variable at once, exit code 2.
    const bare = await run(
      process.execPath,
      [BIN, 'config', 'check', '-c', 'config/ftp-sync.yaml'],
      dir.path,
    );
    expect(bare.code).toBe(2);
    for (const name of Object.keys(env)) {
      expect(bare.stderr).toContain(`environment variable ${name} is not set`);
    }
  });

  it('every other ftp-sync command names a real command with options it has', () => {
    const program = buildProgram();
    const problems: string[] = [];
    for (const command of commands) {
      const w = words(command);
      if (w[0] === 'npm') continue;
      const args = w[0] === 'npx' ? w.slice(2) : w.slice(1);
      const { cmds, options } = resolveCommand(program, args);
      const named = args.filter((a) => /^[a-z]/.test(a) && !a.startsWith('-'));
      if (cmds[0] === program && named.length > 0) problems.push(`${command}: no such command`);
      for (const cmd of cmds) {
        for (const o of options) if (!knows(cmd, o)) problems.push(`${command}: ${cmd.name()} has no ${o}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('every npm run script exists, and the demo flags are in its --help', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const demoFlags = new Set<string>();
    for (const command of commands) {
      const w = words(command);
      if (w[0] !== 'npm') continue;
      expect(pkg.scripts, command).toHaveProperty([w[2]!]);
      if (w[2] === 'demo') for (const f of command.match(/--[a-z][a-z-]*/g) ?? []) demoFlags.add(f);
    }
    expect([...demoFlags]).toEqual(expect.arrayContaining(['--follow', '--keep', '--help']));
    const help = await run(process.execPath, ['--import', 'tsx', 'src/demo/main.ts', '--help'], ROOT);
    expect(help.code).toBe(0);
    for (const f of demoFlags) if (f !== '--help') expect(help.stdout).toContain(f);
  });

  it('the quick start is two command lines, and .ci/run runs its test line as printed', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const block = /^## Quick start\n[\s\S]*?^```sh\n([\s\S]*?)^```/m.exec(readme)?.[1] ?? '';
    const lines = block
      .split('\n')
      .map((l) => l.replace(/\s+#\s.*$/, '').trim())
      .filter(Boolean);
    expect(lines).toEqual([expect.stringMatching(/npm run demo$/), expect.stringMatching(/npm test$/)]);
    const ci = (await readFile(join(ROOT, '.ci', 'run'), 'utf8')).split('\n').map((l) => l.trim());
    expect(ci).toContain(lines[1]);
  });
});
