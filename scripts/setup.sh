#!/usr/bin/env bash
# Set-up for a fresh Debian (12) machine that has only Node and npm:
#
#   scripts/setup.sh demo    what `npm run demo` needs: redis-server, then the npm packages
#   scripts/setup.sh test    what `npm test` needs (the default): redis-server, vsftpd, openssh-server
#                            (the SFTP tests' sshd), openssl (test certificates), prometheus
#                            (promtool checks the alert rules), chromium (the status page is tested in
#                            a headless browser), iproute2 (the far-server tests' network namespace
#                            and tc), python3 with requests (the upload API's Python client), zip and
#                            p7zip-full (zip batches from real tools); then the npm packages
#   scripts/setup.sh slow    what only the slow suites need (npm run test:interop, test:faults,
#                            test:rgw and .ci/run's compose check): docker-compose, the libraries of
#                            pure-ftpd and proftpd, and Ceph's RADOS Gateway (ceph-mon, ceph-osd,
#                            radosgw)
#
# Debian packages are installed only when missing (apt-get install --no-install-recommends; as root,
# or through sudo). The npm packages: `npm ci`, unless node_modules was installed from this very
# package-lock.json (newer than it), so a second run does not reinstall them. Says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"

need=()
want_cmd() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want_file() { [ -x "$1" ] || need+=("$2"); }
want_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' || need+=("$1"); }

case "$mode" in
  demo)
    want_cmd redis-server redis-server
    ;;
  test)
    want_cmd redis-server redis-server
    want_file /usr/sbin/vsftpd vsftpd
    # The SFTP tests run their own sshd on 127.0.0.1 (test/support/sshd.ts), not the package's service.
    want_file /usr/sbin/sshd openssh-server
    want_cmd openssl openssl
    want_cmd promtool prometheus
    want_file /usr/bin/chromium chromium
    want_cmd ip iproute2
    want_cmd tc iproute2
    want_cmd python3 python3
    python3 -c 'import requests' >/dev/null 2>&1 || need+=(python3-requests)
    want_cmd zip zip
    want_cmd 7z p7zip-full
    ;;
  slow)
    want_cmd docker-compose docker-compose
    # Ceph's RADOS Gateway (test/support/rgw.ts starts a one-node cluster on loopback).
    want_cmd ceph-mon ceph-mon
    want_cmd ceph-osd ceph-osd
    want_cmd radosgw radosgw
    # pure-ftpd and proftpd conflict with vsftpd (each provides ftp-server): the interop tests fetch
    # them with `apt-get download` and unpack them with `dpkg -x`; only their libraries are installed.
    for p in openssl libsodium23 libssl3 libcap2 libpam0g libcrypt1 libacl1 libidn2-0 libncursesw6 \
      libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3; do
      want_pkg "$p"
    done
    ;;
  *)
    echo "usage: scripts/setup.sh [demo|test|slow]" >&2
    exit 2
    ;;
esac

apt_lists_missing() {
  # `apt-get download` (interop) needs package lists even when nothing is to be installed.
  [ "$mode" = slow ] && ! apt-cache show pure-ftpd proftpd-core proftpd-mod-crypto >/dev/null 2>&1
}

if [ "${#need[@]}" -gt 0 ] || apt_lists_missing; then
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "setup: need root (or sudo) to run: apt-get install -y --no-install-recommends ${need[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "setup: apt-get update"
  "${sudo[@]}" apt-get update -qq
  if [ "${#need[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
else
  echo "setup: Debian packages for '$mode': all present"
fi

[ "$mode" = slow ] && exit 0
if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "setup: node_modules is current (installed after package-lock.json changed): no npm ci"
else
  echo "setup: npm ci (the npm packages in package-lock.json)"
  npm ci --no-audit --no-fund
fi
