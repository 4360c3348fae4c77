/**
 * Tests that need a piece of the machine (a Debian package, root). Each piece says how to get it:
 * `npm run setup` (scripts/setup.sh) installs all of them. On a developer machine without it the
 * suite is skipped and named in the run's summary; under CI=true it fails with the missing piece
 * instead (test/support/summary-reporter.ts also fails a CI run that skipped anything).
 */
import { accessSync, constants } from 'node:fs';
import { describe, it } from 'vitest';
import { hasSshd } from './sshd.js';
import { isCi } from './summary-reporter.js';
import { hasOpenssl } from './tls.js';
import { hasVsftpd } from './vsftpd.js';

const SETUP = 'npm run setup installs it';
const isRoot = () => process.getuid?.() === 0;

/** Each returns undefined when the piece is there, else what is missing and how to get it. */
export const missing = {
  sshd: () =>
    hasSshd()
      ? undefined
      : `OpenSSH's sshd run as root (apt-get install openssh-server; ${SETUP}; run the tests as root)`,
  vsftpd: () => (hasVsftpd() ? undefined : `vsftpd (apt-get install vsftpd; ${SETUP})`),
  vsftpdAsRoot: () =>
    missing.vsftpd() ??
    (isRoot() ? undefined : 'root (vsftpd logs a system account in): run the tests as root'),
  openssl: () => (hasOpenssl() ? undefined : `the openssl command (apt-get install openssl; ${SETUP})`),
  chromium: () =>
    executable(CHROMIUM)
      ? undefined
      : `Debian's chromium at ${CHROMIUM} (apt-get install chromium; ${SETUP})`,
} as const;

/** The browser the status page is tested in (CHROMIUM=<path> picks another). */
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function failing(name: string, what: string): void {
  describe(name, () => {
    it(`cannot run without ${what}`, () => {
      throw new Error(`missing ${what}`);
    });
  });
}

/** `describe` that runs only with nothing `missing` (see the file comment for what happens otherwise). */
export function describeNeeding(lack: string | undefined, name: string, fn: () => void): void {
  if (!lack) describe(name, fn);
  else if (isCi()) failing(name, lack);
  else describe.skip(`${name} [needs ${lack}]`, fn);
}

/**
 * For a piece a test uses when it is there (an extra server, a TLS variant): true when present;
 * false on a developer machine without it; under CI=true an error naming it (the file fails).
 */
export function optionalPiece(lack: string | undefined): boolean {
  if (!lack) return true;
  if (isCi()) throw new Error(`CI=true: missing ${lack}`);
  return false;
}

/** `it` that runs only with nothing `missing`, like describeNeeding. */
export function itNeeding(
  lack: string | undefined,
): (name: string, fn: () => Promise<void> | void, timeout?: number) => void {
  if (!lack) return (name, fn, timeout) => it(name, fn, timeout);
  if (isCi())
    return (name) =>
      it(name, () => {
        throw new Error(`missing ${lack}`);
      });
  return (name, fn, timeout) => it.skip(`${name} [needs ${lack}]`, fn, timeout);
}
