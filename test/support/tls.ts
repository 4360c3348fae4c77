/**
 * A throwaway public-key infrastructure for FTPS tests, made with the `openssl` command line (node:crypto
 * cannot issue certificates): a CA, a server certificate it signs for 127.0.0.1, the same key's
 * certificate already expired, and a self-signed certificate. Keys are EC P-256 (fast to make).
 * Everything lives in a temp directory removed by `cleanup()`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './fs.js';

const run = promisify(execFile);

export interface TestCert {
  /** PEM private key. */
  key: string;
  /** PEM certificate. */
  cert: string;
  /** SHA-256 fingerprint as Node prints it (`AA:BB:…`). */
  fingerprint256: string;
}

export interface TestPki {
  /** PEM file of the CA certificate (for a tenant's `ftp.caFile`). */
  caFile: string;
  caCert: string;
  /** Signed by the CA for IP 127.0.0.1 and DNS localhost, valid for two days. */
  server: TestCert;
  /** Same key and names as `server`, signed by the CA, valid only on 1–2 January 2020. */
  expired: TestCert;
  /** Signed by its own key for 127.0.0.1: no CA vouches for it. */
  selfSigned: TestCert;
  cleanup(): Promise<void>;
}

const SAN = 'subjectAltName=IP:127.0.0.1,DNS:localhost';
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** True when the `openssl` command line is on PATH (sync, for test/support/needs.ts). */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function makeTestPki(): Promise<TestPki> {
  const dir = await tempDir('pki');
  const p = (name: string) => join(dir.path, name);
  const openssl = async (args: string[]) => {
    try {
      await run('openssl', args, { cwd: dir.path });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`);
    }
  };
  try {
    // CA
    await openssl([
      'req',
      '-x509',
      ...EC,
      '-keyout',
      p('ca.key'),
      '-out',
      p('ca.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=ftp-sync test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    // Server key and request
    await openssl([
      'req',
      ...EC,
      '-keyout',
      p('server.key'),
      '-out',
      p('server.csr'),
      '-subj',
      '/CN=127.0.0.1',
    ]);
    await writeFile(p('ext.cnf'), `${SAN}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    await openssl([
      'x509',
      '-req',
      '-in',
      p('server.csr'),
      '-CA',
      p('ca.pem'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-out',
      p('server.pem'),
      '-days',
      '2',
      '-extfile',
      p('ext.cnf'),
    ]);
    // Expired: `openssl ca` is the one command of OpenSSL 3.0 that takes explicit validity dates.
    await writeFile(p('index.txt'), '');
    await writeFile(p('serial'), '1000\n');
    await writeFile(
      p('ca.cnf'),
      [
        '[ca]',
        'default_ca=test',
        '[test]',
        'database=index.txt',
        'serial=serial',
        'new_certs_dir=.',
        'default_md=sha256',
        'policy=any',
        'copy_extensions=none',
        'unique_subject=no',
        '[any]',
        'commonName=supplied',
        '[ext]',
        SAN,
        'basicConstraints=CA:FALSE',
        'extendedKeyUsage=serverAuth',
        '',
      ].join('\n'),
    );
    await openssl([
      'ca',
      '-batch',
      '-config',
      'ca.cnf',
      '-cert',
      p('ca.pem'),
      '-keyfile',
      p('ca.key'),
      '-in',
      p('server.csr'),
      '-out',
      p('expired.pem'),
      '-startdate',
      '20200101000000Z',
      '-enddate',
      '20200102000000Z',
      '-extensions',
      'ext',
      '-notext',
    ]);
    // Self-signed
    await openssl([
      'req',
      '-x509',
      ...EC,
      '-keyout',
      p('self.key'),
      '-out',
      p('self.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      SAN,
    ]);
    const read = (name: string) => readFile(p(name), 'utf8');
    const cert = async (keyFile: string, certFile: string): Promise<TestCert> => {
      const pem = await read(certFile);
      return { key: await read(keyFile), cert: pem, fingerprint256: new X509Certificate(pem).fingerprint256 };
    };
    return {
      caFile: p('ca.pem'),
      caCert: await read('ca.pem'),
      server: await cert('server.key', 'server.pem'),
      expired: await cert('server.key', 'expired.pem'),
      selfSigned: await cert('self.key', 'self.pem'),
      cleanup: dir.cleanup,
    };
  } catch (err) {
    await dir.cleanup();
    throw err;
  }
}
