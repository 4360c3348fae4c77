import type { TestProject } from 'vitest/node';
import { tempDir } from '../support/fs.js';
import { unpackDebs } from '../support/servers/debs.js';
import { isRoot } from '../support/servers/system-user.js';
import { hasOpenssl } from '../support/tls.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The tree pure-ftpd and proftpd were unpacked into (test/support/servers/debs.ts). */
    interopDebRoot: string;
  }
}

/**
 * Vitest globalSetup of `npm run test:interop`: unpacks pure-ftpd and proftpd once per run (their
 * packages conflict with the installed vsftpd) and checks what the matrix needs. A missing piece
 * fails the run with what to install: the matrix is never silently skipped.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!isRoot()) throw new Error('the interop matrix runs FTP servers that need root (chroot, setuid)');
  if (!(await hasOpenssl()))
    throw new Error('the interop matrix needs the openssl command (apt-get install openssl)');
  const dir = await tempDir('interop-debs');
  try {
    project.provide('interopDebRoot', await unpackDebs(dir.path));
  } catch (err) {
    await dir.cleanup();
    throw err;
  }
  return dir.cleanup;
}
