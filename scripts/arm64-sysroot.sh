#!/usr/bin/env bash
# Debian's arm64 packages PACKAGE... with everything they depend on,
# unpacked into one folder (a sysroot), from the machine's own Debian
# sources through an apt of its own (its lists, cache and an empty dpkg
# status under the cache): the machine's apt and dpkg are not touched, no
# `dpkg --add-architecture`. For the hub's arm64 image (`ip` and `nft` and
# their libraries) and arm64 builds. Prints the sysroot's path.
#
#   scripts/arm64-sysroot.sh iproute2 nftables
#
# The same packages give the same sysroot (cached by their names).
set -euo pipefail
(($#)) || { echo "usage: scripts/arm64-sysroot.sh PACKAGE..." >&2; exit 2; }
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
key="$(printf '%s\n' "$@" | LC_ALL=C sort | tr '\n' '+')"
sysroot="$cache_root/arm64-sysroot-${key%+}"
if [[ -f "$sysroot/.complete" ]]; then
    echo "$sysroot"
    exit 0
fi
apt_root="$cache_root/arm64-apt"
mkdir -p "$apt_root/lists/partial" "$apt_root/archives/partial" "$apt_root/etc/sources.list.d" \
    "$apt_root/etc/preferences.d"
: >"$apt_root/status"
# The machine's Debian sources, as they are (its mirror, its keys).
for source in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [[ -f "$source" ]] && cp "$source" "$apt_root/etc/sources.list.d/"
done
[[ -f "$apt_root/etc/sources.list.d/sources.list" ]] &&
    mv "$apt_root/etc/sources.list.d/sources.list" "$apt_root/etc/sources.list.d/machine.list"
apt_options=(
    -o "Dir::Etc=$apt_root/etc"
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::State::Lists=$apt_root/lists"
    -o "Dir::State::status=$apt_root/status"
    -o "Dir::Cache::Archives=$apt_root/archives"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
    -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)
echo "arm64-sysroot: fetching $* for arm64" >&2
apt-get "${apt_options[@]}" -qq update >&2
apt-get "${apt_options[@]}" -qq -y --no-install-recommends --download-only install "$@" >&2
work="$(mktemp -d "$cache_root/arm64-sysroot.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for package in "$apt_root"/archives/*_arm64.deb "$apt_root"/archives/*_all.deb; do
    [[ -f "$package" ]] && dpkg-deb -x "$package" "$work"
done
# Debian's merged /usr: /lib is /usr/lib.
for dir in lib sbin bin; do
    if [[ -d "$work/usr/$dir" && ! -e "$work/$dir" ]]; then
        ln -s "usr/$dir" "$work/$dir"
    fi
done
touch "$work/.complete"
rm -rf "$sysroot"
mv "$work" "$sysroot"
trap - EXIT
echo "$sysroot"
