/**
 * The SourceSession conformance suite against every source kind: FTP (in-process ftp-srv, FTPS offered
 * for the identity check) and SFTP (OpenSSH's sshd on loopback, when installed and run as root), and
 * against the in-memory source the fast suites use (test/support/fakes/source.ts), and the synthetic
 * source of the scale bench (test/support/fakes/synthetic-source.ts) with the suite's files in its overlay.
 */
import { posix } from 'node:path';
import { connectSource } from '../../src/adapters/source.js';
import { parseConfig, type TenantConfig } from '../../src/config.js';
import { makeMemorySource } from '../support/fakes/source.js';
import { makeSyntheticSource } from '../support/fakes/synthetic-source.js';
import { tempDir } from '../support/fs.js';
import { startFtpServer } from '../support/ftp-server.js';
import { describeNeeding, missing, optionalPiece } from '../support/needs.js';
import { startSshd } from '../support/sshd.js';
import { makeTestPki } from '../support/tls.js';
import { describeSourceConformance } from './source.js';

const tenantOf = (source: Record<string, unknown>): TenantConfig =>
  parseConfig({ s3: { bucket: 'b' }, vela: { enabled: false }, tenants: [{ org: 'conformance', ...source }] })
    .tenants[0]!;

const FTP_PASSWORD = 'ftp-conformance-Pa55';
const withOpenssl = optionalPiece(missing.openssl());

describeSourceConformance(
  'FTP (ftp-srv)',
  { reportsLinks: false, exactTimes: false, checksIdentity: withOpenssl, missingIsPermanent: false },
  async () => {
    const dir = await tempDir('conformance-ftp');
    const pki = withOpenssl ? await makeTestPki() : undefined;
    const server = await startFtpServer({
      root: dir.path,
      users: { test: FTP_PASSWORD },
      tls: pki && { key: pki.server.key, cert: pki.server.cert },
    });
    const ftp = { host: '127.0.0.1', port: server.port, user: 'test' };
    const plain = tenantOf({ ftp: { ...ftp, secure: false } });
    return {
      root: dir.path,
      remote: (rel) => posix.join('/', rel),
      password: FTP_PASSWORD,
      connect: (opts = {}) => connectSource(plain, { user: 'test', password: opts.password ?? FTP_PASSWORD }),
      connectExpectingOtherIdentity: () =>
        connectSource(
          // The CA vouches for the server, but the pinned certificate is another one.
          tenantOf({
            ftp: {
              ...ftp,
              secure: 'explicit',
              caFile: pki!.caFile,
              fingerprint: pki!.selfSigned.fingerprint256,
            },
          }),
          { user: 'test', password: FTP_PASSWORD },
        ),
      cutDownload(rel, bytes) {
        server.faults.cutDataAfterBytes = { path: posix.join('/', rel), bytes, mode: 'abort' };
        return () => {};
      },
      async stop() {
        await server.stop();
        await pki?.cleanup();
        await dir.cleanup();
      },
    };
  },
);

describeNeeding(missing.sshd(), 'with sshd', () => {
  describeSourceConformance(
    'SFTP (OpenSSH sshd)',
    { reportsLinks: true, exactTimes: true, checksIdentity: true, missingIsPermanent: true },
    async () => {
      const server = await startSshd();
      const sftp = {
        host: '127.0.0.1',
        port: server.port,
        user: server.user,
        password: server.password,
        hostKeyFingerprint: server.hostKeyFingerprint,
      };
      const tenant = await Promise.resolve()
        .then(() => tenantOf({ sftp }))
        .catch(async (err) => {
          await server.stop(); // a fixture that fails to build must not leave sshd running
          throw err;
        });
      return {
        root: server.root,
        remote: (rel) => posix.join(server.root, rel),
        password: server.password,
        connect: (opts = {}) =>
          connectSource(tenant, { user: server.user, password: opts.password ?? server.password }),
        connectExpectingOtherIdentity: () =>
          connectSource(
            // The fingerprint of another key (sha256 of nothing).
            tenantOf({
              sftp: { ...sftp, hostKeyFingerprint: 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU' },
            }),
            { user: server.user, password: server.password },
          ),
        cutDownload(_rel, bytes) {
          let cut = false;
          // sshd cannot be told to stop half way: kill the session once enough has arrived.
          return async (received) => {
            if (cut || received < bytes) return;
            cut = true;
            await server.cutSessions();
          };
        },
        stop: () => server.stop(),
      };
    },
  );
});

describeSourceConformance(
  'in-memory fake',
  // Exact times and links as SFTP has them; no server identity to pin.
  { reportsLinks: true, exactTimes: true, checksIdentity: false, missingIsPermanent: true },
  async () => {
    // The suite writes its tree to disk; each login takes the fake's tree from there.
    const dir = await tempDir('conformance-memory');
    const source = makeMemorySource({ password: 'memory-conformance-Pa55' });
    return {
      root: dir.path,
      remote: (rel) => posix.join('/', rel),
      password: source.password,
      async connect(opts = {}) {
        await source.loadDir(dir.path);
        return source.connect({ password: opts.password ?? source.password });
      },
      cutDownload(rel, bytes) {
        source.cutNextDownload(posix.join('/', rel), bytes);
        return () => {};
      },
      stop: () => dir.cleanup(),
    };
  },
);

describeSourceConformance(
  'synthetic source (generated tree + in-memory overlay)',
  // The overlay holds the suite's files; the generated tree sits next to them at /synthetic.
  { reportsLinks: true, exactTimes: true, checksIdentity: false, missingIsPermanent: true },
  async () => {
    const dir = await tempDir('conformance-synthetic');
    const overlay = makeMemorySource({ password: 'synthetic-conformance-Pa55' });
    const source = makeSyntheticSource({ files: 2_500, perDir: 1_000, overlay });
    return {
      root: dir.path,
      remote: (rel) => posix.join('/', rel),
      password: source.password,
      async connect(opts = {}) {
        await overlay.loadDir(dir.path);
        return source.connect({ password: opts.password ?? source.password });
      },
      cutDownload(rel, bytes) {
        overlay.cutNextDownload(posix.join('/', rel), bytes);
        return () => {};
      },
      stop: () => dir.cleanup(),
    };
  },
);
