#!/usr/bin/env bash
# What installing the hub's packages pulls into a clean Debian bookworm
# server (scripts/debian-root.sh's root, through an overlay: the root is
# not written), as apt reports it before installing: the packages newly
# installed and the disk they take. Stand-in packages carry the packages'
# names and fields (packaging/depends.sh) and nothing else, so the numbers
# are what Debian adds; Hearth's own packages add their Installed-Size on
# top (docs/benchmarks.md). Also measures the fields as they were at
# 983a3f6 (wireguard-tools recommended, Podman's network left to apt), for
# the before and after of issue 56.
#
#   scripts/install-size.sh      # as root
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/depends.sh
source packaging/depends.sh
root="$(scripts/debian-root.sh)"
work="$(mktemp -d)"
mkdir "$work/upper" "$work/work" "$work/merged"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$work/upper,workdir=$work/work" "$work/merged"
trap 'umount "$work/merged"; rm -rf "$work"' EXIT
libraries="$(linked_packages "$(scripts/build-llama-server.sh)")"

stand_ins "$work/merged/tmp/now" "$libraries"
before="$work/merged/tmp/before"
mkdir -p "$before"
stand_in "$before/hearth.deb" hearth "Depends: podman, systemd (>= 247), iproute2, nftables, passwd" \
    "Recommends: hearth-llama-server (= VERSION), hearth-model-smollm2, wireguard-tools"
stand_in "$before/hearth-llama-server.deb" hearth-llama-server "Depends: hearth (= VERSION), $libraries"
stand_in "$before/hearth-model-smollm2.deb" hearth-model-smollm2

# measure LABEL SET [APT OPTION...]: apt's summary for installing SET's packages.
measure() {
    local label="$1" set="$2" said count size
    shift 2
    said="$(chroot "$work/merged" sh -c "apt-get install --assume-no $* /tmp/$set/*.deb" 2>&1 || true)"
    count="$(sed -n 's/.* \([0-9]*\) newly installed.*/\1/p' <<<"$said")"
    size="$(sed -n 's/^After this operation, \(.*\) of additional disk space will be used\./\1/p' <<<"$said")"
    # The stand-ins are not Debian's.
    count=$((count - $(find "$work/merged/tmp/$set" -name '*.deb' | wc -l)))
    printf '| %s | %s | %s |\n' "$label" "$count" "$size"
}
echo "| what apt installs besides Hearth's packages | packages | disk |"
echo "| --- | --- | --- |"
measure "before (983a3f6): \`apt install ./*.deb\`" before
measure "now: \`apt install ./*.deb\`" now
measure "now: \`apt install --no-install-recommends ./*.deb\`" now --no-install-recommends
