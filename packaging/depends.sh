# What the hub's packages need from Debian, in one place: packaging/build-debs.sh
# writes it into the packages, scripts/debian-root.sh fetches what it pulls
# in into a clean server's apt cache for the appliance test. Sourced, not
# run. VERSION in a field stands for the packages' own version.
#
# The hub runs its pod with rootful Podman: netavark is its network (named
# before podman, so apt does not also pick the older CNI plugins for
# Podman's network) and bookworm's netavark sets the pod network's
# forwarding and NAT with iptables (which it does not depend on: without it
# the pod does not start, "netavark: No such file or directory");
# catatonit is the pod's pause process, and D-Bus the system bus Podman's
# systemd cgroup manager speaks to.
# Everything else Podman recommends (buildah, rootless helpers) the hub
# does not use: `apt-get install --no-install-recommends` leaves it out.

# shellcheck disable=SC2034 # read by the scripts that source this file
hub_depends="hearth-agent (= VERSION), netavark, iptables, catatonit, dbus, podman, systemd (>= 247), iproute2, nftables, passwd"
# shellcheck disable=SC2034
hub_recommends="hearth-llama-server (= VERSION), hearth-model-smollm2, hearth-model-e5, hearth-speech (= VERSION)"
# shellcheck disable=SC2034
hub_suggests="wireguard-tools"
# shellcheck disable=SC2034
agent_depends="iproute2, nftables"
# shellcheck disable=SC2034
llama_depends="hearth (= VERSION)"
# shellcheck disable=SC2034
speech_depends="hearth (= VERSION), hearth-model-whisper-base"

# linked_packages BINARY [ARCH]: the Debian packages of the shared libraries
# BINARY links, comma-separated ("libc6, libgomp1, ..."). For arm64 (built
# with Debian's cross compiler) the libraries are the cross packages'
# (libstdc++6-arm64-cross), whose names less the suffix are the board's.
linked_packages() {
    local binary="$1" arch="${2:-amd64}"
    if [[ "$arch" == arm64 ]]; then
        aarch64-linux-gnu-readelf --dynamic "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' |
            while read -r library; do
                dpkg-query --search "$(realpath "/usr/aarch64-linux-gnu/lib/$library")" 2>/dev/null ||
                    dpkg-query --search "/usr/aarch64-linux-gnu/lib/$library"
            done | cut -d: -f1 | sed 's/-arm64-cross$//' | sort -u | paste -sd, | sed 's/,/, /g'
        return
    fi
    ldd "$binary" | awk '$3 ~ /^\// { print $3 }' | while read -r library; do
        dpkg-query --search "$(realpath "$library")" 2>/dev/null || dpkg-query --search "$library"
    done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g'
}

# stand_in DEB NAME [FIELD...]: writes DEB, an empty package NAME (version
# 0) with FIELDs (VERSION in them read as 0). Stand-ins with the packages'
# names and fields ask apt what installing the packages would pull in.
stand_in() {
    local deb="$1" name="$2" stage
    shift 2
    stage="$(mktemp -d)"
    mkdir "$stage/DEBIAN"
    {
        printf 'Package: %s\nVersion: 0\nArchitecture: amd64\nMaintainer: none <none@hearth.invalid>\n' "$name"
        (($#)) && printf '%s\n' "${@//VERSION/0}"
        printf 'Description: stands in for %s\n' "$name"
    } >"$stage/DEBIAN/control"
    dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
    rm -rf "$stage"
}

# stand_ins DIR LIBRARIES: stand-ins of the seven packages in DIR, with
# LIBRARIES (linked_packages of llama-server) as llama-server's and
# whisper-server's (both built the same way: the same libraries).
stand_ins() {
    local dir="$1" libraries="$2"
    mkdir -p "$dir"
    stand_in "$dir/hearth.deb" hearth "Depends: $hub_depends" "Recommends: $hub_recommends" \
        "Suggests: $hub_suggests"
    stand_in "$dir/hearth-agent.deb" hearth-agent "Depends: $agent_depends"
    stand_in "$dir/hearth-llama-server.deb" hearth-llama-server "Depends: $llama_depends, $libraries"
    stand_in "$dir/hearth-model-smollm2.deb" hearth-model-smollm2
    stand_in "$dir/hearth-model-e5.deb" hearth-model-e5
    stand_in "$dir/hearth-speech.deb" hearth-speech "Depends: $speech_depends, $libraries"
    stand_in "$dir/hearth-model-whisper-base.deb" hearth-model-whisper-base
}
