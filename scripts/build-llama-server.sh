#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` from the sources vendored in PyPI's
# llama-cpp-python sdist and caches the binary outside the repository, keyed
# by version. Prints the path of the cached binary on stdout.
#
#   scripts/build-llama-server.sh            # build if missing, print path
#   LLAMA_CPP_PYTHON_VERSION=0.3.36 scripts/build-llama-server.sh
#   HEARTH_ARCH=arm64 scripts/build-llama-server.sh   # for arm64 boards
#
# arm64 is cross-compiled (scripts/ggml-arch.sh; the binary links
# libstdc++6, libgomp1, libgcc-s1 and libc6 of the board's Debian, which
# packaging/depends.sh names from the cross packages); cached beside the
# x86-64 build as llama-server-VERSION-arm64.
#
# The default version is in scripts/llama-cpp-python.version, which the test
# harness (testkit/src/llama.rs) reads too.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
version="${LLAMA_CPP_PYTHON_VERSION:-$(cat "$here/llama-cpp-python.version")}"
# shellcheck source=scripts/ggml-arch.sh
source "$here/ggml-arch.sh"
ggml_arch llama-server "$version"
binary="$dest/llama-server"

if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi
# One build at a time (the test tools' steps run side by side, and the
# Debian root asks for the binary too); the second finds it built.
mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9
if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi

for tool in cmake ninja python3 "${compilers[@]}"; do
    command -v "$tool" >/dev/null || { echo "build-llama-server: $tool is missing${cross:+ (apt-get install g++-aarch64-linux-gnu)}" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "build-llama-server: fetching llama-cpp-python==$version sdist" >&2
python3 -m pip download --quiet --no-binary :all: --no-deps --dest "$work" \
    "llama-cpp-python==$version" >&2
tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"

echo "build-llama-server: configuring (this takes 10-25 minutes on 2 cores)" >&2
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF "${cross[@]}" >&2
cmake --build "$work/build" --target llama-server -j"$(nproc)" >&2

mkdir -p "$dest"
install -m 0755 "$work/build/bin/llama-server" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
