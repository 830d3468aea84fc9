#!/usr/bin/env bash
# A clean Debian bookworm server for the appliance test to install the hub
# on, as an admin's server would be: debootstrap's minimal system with
# systemd as its init and nothing else (no D-Bus running, no Podman), apt's
# lists of bookworm, and in apt's cache the archives that installing the
# hub's packages fetches, so the test's `apt-get install ./*.deb` inside it
# resolves and installs for real without the network. What to fetch is
# what apt picks for empty packages of the same names and the same fields
# (packaging/depends.sh, and the libraries llama-server links): apt's
# choices among alternatives depend on those, so the list is not guessed. Cached outside the repository, keyed by the package
# list and this script; prints the root's path. The test never writes into
# it: the machine's changes go to an overlay.
#
#   scripts/debian-root.sh      # make if missing, print the root's path
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/depends.sh
source packaging/depends.sh
suite=bookworm
mirror="${HEARTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
[[ "$(id -u)" == 0 ]] || { echo "debian-root: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-root: debootstrap is missing" >&2; exit 1; }
llama="$(scripts/build-llama-server.sh)"
libraries="$(linked_packages "$llama")"
key="$({ echo "$suite $libraries"; cat "$0" packaging/depends.sh; } | sha256sum | cut -c1-16)"
dest="$cache_root/debian-$suite-$key"
if [[ -e "$dest/done" ]]; then
    echo "$dest/root"
    exit 0
fi
mkdir -p "$cache_root"
exec 9>"$cache_root/debian-root.lock"
flock 9
if [[ -e "$dest/done" ]]; then
    echo "$dest/root"
    exit 0
fi
# Roots of earlier package lists or scripts are no longer used.
find "$cache_root" -maxdepth 1 -name "debian-$suite-*" ! -path "$dest" -exec rm -rf {} +
rm -rf "$dest"
mkdir -p "$dest"
echo "debian-root: debootstrap $suite (minimal, with systemd)" >&2
debootstrap --variant=minbase --include=systemd-sysv "$suite" "$dest/partial" "$mirror" >"$dest/debootstrap.log" 2>&1 ||
    { tail -20 "$dest/debootstrap.log" >&2; exit 1; }
# A set-up server names its root in fstab (debootstrap leaves a placeholder):
# without it systemd remounts / as the kernel's command line says, here
# read-only.
printf '# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/root / auto defaults 0 1\n' \
    >"$dest/partial/etc/fstab"

stand_ins "$dest/partial/tmp/stand-ins" "$libraries"
echo "debian-root: fetching what the hub's packages pull in" >&2
chroot "$dest/partial" apt-get clean >&2
chroot "$dest/partial" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive chroot "$dest/partial" sh -c \
    'apt-get install --download-only -y -qq /tmp/stand-ins/*.deb' >&2
rm -rf "$dest/partial/tmp/stand-ins"
mv "$dest/partial" "$dest/root"
touch "$dest/done"
echo "$dest/root"
