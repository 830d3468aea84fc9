#!/usr/bin/env bash
# What arm64 adds to a build, measured in one run beside x86-64 (each from an
# empty target folder and an empty llama.cpp cache, one after the other on
# the same machine): the hub's static binaries (podman/build-images.sh
# --binaries), llama-server (scripts/build-llama-server.sh), and the sizes
# of the stripped binaries and of the images (built after, from the usual
# caches). Prints a Markdown table for
# docs/benchmarks.md ("arm64: builds and sizes").
#
#   scripts/bench-arm64-build.sh        # as root; about 30 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/podman/test/containers.conf}"
# The toolchain itself is not part of a build's time (it is cached once).
scripts/cross-toolchain.sh >/dev/null

seconds() { local start=$SECONDS; "$@" >"$work/log" 2>&1 || { tail -20 "$work/log" >&2; exit 1; }; echo $((SECONDS - start)); }
declare -A binaries llama
for arch in amd64 arm64; do
    binaries[$arch]="$(CARGO_TARGET_DIR="$work/target-$arch" HEARTH_ARCH=$arch seconds podman/build-images.sh --binaries gateway)"
    llama[$arch]="$(HEARTH_CACHE_DIR="$work/cache-$arch" HEARTH_ARCH=$arch seconds scripts/build-llama-server.sh)"
done
echo "| | amd64 | arm64 | arm64 / amd64 |"
echo "| --- | --- | --- | --- |"
ratio() { python3 -c "print(f'{$2 / $1:.2f}x')"; }
echo "| the hub's static binaries, empty target folder (s) | ${binaries[amd64]} | ${binaries[arm64]} | $(ratio "${binaries[amd64]}" "${binaries[arm64]}") |"
echo "| llama-server, empty cache (s) | ${llama[amd64]} | ${llama[arm64]} | $(ratio "${llama[amd64]}" "${llama[arm64]}") |"
for binary in hearth hearth-coordinator hearth-agent hearth-gateway hearth-messaging; do
    objcopy --strip-debug "$work/target-amd64/x86_64-unknown-linux-musl/release/$binary" "$work/$binary-amd64"
    aarch64-linux-gnu-objcopy --strip-debug "$work/target-arm64/aarch64-unknown-linux-musl/release/$binary" "$work/$binary-arm64"
    a="$(stat -c %s "$work/$binary-amd64")"
    b="$(stat -c %s "$work/$binary-arm64")"
    echo "| \`$binary\`, stripped (bytes) | $a | $b | $(ratio "$a" "$b") |"
done
for arch in amd64 arm64; do
    objcopy=objcopy
    [[ $arch == arm64 ]] && objcopy=aarch64-linux-gnu-objcopy
    $objcopy --strip-debug "$work/cache-$arch"/llama-server-*/llama-server "$work/llama-$arch"
done
a="$(stat -c %s "$work/llama-amd64")"
b="$(stat -c %s "$work/llama-arm64")"
echo "| llama-server, stripped (bytes) | $a | $b | $(ratio "$a" "$b") |"
# The images, from the usual caches (the sizes do not depend on them).
for arch in amd64 arm64; do
    HEARTH_ARCH=$arch podman/build-images.sh hub gateway messaging >"$work/log" 2>&1 || { tail -20 "$work/log" >&2; exit 1; }
done
for image in hub gateway messaging; do
    a="$(podman image inspect --format '{{.Size}}' "localhost/hearth-$image:latest")"
    b="$(podman image inspect --format '{{.Size}}' "localhost/hearth-$image:latest-arm64")"
    echo "| image \`hearth-$image\` (bytes) | $a | $b | $(ratio "$a" "$b") |"
done
