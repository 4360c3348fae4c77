#!/usr/bin/env bash
# Runs the README's two quick-start lines on a fresh Debian 12 root that has only Node and npm
# (docs/fresh-machine.md has the outcome of a run). As root, on a Debian/Ubuntu machine with network:
#
#   scripts/fresh-machine.sh [WORKDIR]      WORKDIR default: /var/tmp/ftp-sync-fresh
#
# 1. `debootstrap --variant=minbase bookworm` into WORKDIR/base, once (kept pristine, reused).
# 2. A copy of it as WORKDIR/root-<time>; into it, only this machine's Node and npm (`node` and the
#    npm directory it runs from: the root cannot download Node itself, and Debian 12's own nodejs is
#    Node 18, older than package.json's engines).
# 3. A fresh `git clone` of this checkout's branch (BRANCH= to pick another) into /src/ftp-sync.
# 4. chroot with /proc, /sys and /dev mounted and this machine's resolv.conf (apt and npm reach their
#    servers through it), an empty environment but PATH, HOME, LANG and CI=true (a skipped test fails),
#    and NODE_EXTRA_CA_CERTS when this machine's network needs an extra CA (a TLS-intercepting proxy).
# 5. The Quick start's first code block, line by line, as printed there; each line's output goes to
#    WORKDIR/<root>/line-<n>.log and its duration and exit code are printed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/var/tmp/ftp-sync-fresh}
branch=${BRANCH:-$(git -C "$here" rev-parse --abbrev-ref HEAD)}
[ "$(id -u)" = 0 ] || { echo "fresh-machine: run as root (debootstrap, chroot, mount)" >&2; exit 1; }
mkdir -p "$work"

base=$work/base
if [ ! -f "$base/.complete" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap
  rm -rf "$base"
  echo "fresh-machine: debootstrap --variant=minbase bookworm $base"
  # debootstrap's default mirror, or DEBIAN_MIRROR=<url>.
  debootstrap --variant=minbase bookworm "$base" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$work/debootstrap.log"
  touch "$base/.complete"
fi

root=$work/root-$(date -u +%Y%m%dT%H%M%S)
cp -a "$base" "$root"
rm -f "$root/.complete"
echo "fresh-machine: root $root"

# Node and npm, nothing else: the node binary (it links only libc, libstdc++ and libgcc, which
# minbase has) and npm's own directory, with the usual two links.
node_bin=$(readlink -f "$(command -v node)")
npm_cli=$(readlink -f "$(command -v npm)")
npm_dir=${npm_cli%/bin/npm-cli.js}
[ -f "$npm_dir/package.json" ] || { echo "fresh-machine: cannot find npm's directory from $npm_cli" >&2; exit 1; }
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

mkdir -p "$root/src"
git clone --quiet --branch "$branch" "$here" "$root/src/ftp-sync"
commit=$(git -C "$root/src/ftp-sync" rev-parse --short HEAD)
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A network that intercepts TLS (a proxy with its own CA) is part of the network, like resolv.conf:
# the CA file this machine gives Node in NODE_EXTRA_CA_CERTS goes along, so npm can reach its registry.
extra_ca=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$root/etc/extra-ca.crt"
  extra_ca=(NODE_EXTRA_CA_CERTS=/etc/extra-ca.crt)
fi

mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
cleanup() {
  # Servers the tests started are gone with the tests; anything left running holds the mounts.
  umount -R "$root/dev" 2>/dev/null || umount -lR "$root/dev" || true
  umount "$root/sys" "$root/proc" 2>/dev/null || umount -l "$root/sys" "$root/proc" || true
}
trap cleanup EXIT

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI=true "${extra_ca[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "cd /src/ftp-sync && $1"
}

echo "fresh-machine: branch $branch at $commit; in the root: node $(in_root 'node --version'), npm $(in_root 'npm --version')"
echo "fresh-machine: redis-server, vsftpd, sshd, chromium before: $(in_root 'for c in redis-server vsftpd sshd chromium; do command -v $c || true; done' | wc -l) found"

# The Quick start's first ```sh block: the two lines, without their comments.
mapfile -t lines < <(awk '/^## Quick start/{q=1} q&&/^```sh/{b=1;next} b&&/^```/{exit} b' "$root/src/ftp-sync/README.md" |
  sed -E 's/[[:space:]]+#.*$//' | grep -v '^[[:space:]]*$')
status=0
for i in "${!lines[@]}"; do
  line=${lines[$i]}
  log=$root/line-$((i + 1)).log
  echo "fresh-machine: \$ $line"
  start=$(date +%s)
  rc=0
  in_root "$line" >"$log" 2>&1 || rc=$?
  echo "fresh-machine: exit $rc after $(($(date +%s) - start)) s (log: $log)"
  grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$|Test Files|Tests  ' "$log" | sed 's/^/  /' || true
  [ "$rc" = 0 ] || status=$rc
done
exit "$status"
