/**
 * The RADOS Gateway tests (npm run test:rgw) skip on a machine without the Ceph packages and fail
 * under CI=true: what `rgwAvailable` and `haveRgw` decide from PATH, without starting a cluster.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { haveRgw, rgwAvailable, startRgw } from './support/rgw.js';

describe('RADOS Gateway availability', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
  });

  it('without the Ceph binaries on PATH: not available, naming what is missing and what to install', async () => {
    vi.stubEnv('PATH', '/nonexistent');
    const a = rgwAvailable();
    expect(a.ok).toBe(false);
    if (a.ok) return;
    expect(a.why).toMatch(/ceph-mon, monmaptool, ceph-osd, ceph, radosgw, radosgw-admin not on PATH/);
    expect(a.why).toContain('apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw');
    await expect(startRgw()).rejects.toThrow(/RADOS Gateway not installed/);
  });

  it('haveRgw(): false (skip) on a developer machine, an error under CI=true', () => {
    vi.stubEnv('PATH', '/nonexistent');
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    vi.stubEnv('CI', '');
    expect(haveRgw()).toBe(false);
    vi.stubEnv('CI', 'true');
    expect(() => haveRgw()).toThrow(/RADOS Gateway not installed/);
  });
});
