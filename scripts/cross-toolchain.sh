#!/usr/bin/env bash
# The toolchain that builds Hearth's static binaries for arm64 on an x86-64
# machine: the Rust target aarch64-unknown-linux-musl (rustup), Zig from
# PyPI's `ziglang` wheel (its C compiler and linker carry musl for every
# target, so the C parts — SQLite, ring, aws-lc, zstd — build without a
# cross sysroot), and cargo-zigbuild (crates.io), which hands Zig to cargo.
# All from the registries this project may use; cached outside the tree.
# Prints the folder to put first on PATH (the one holding `zig`).
#
#   export PATH="$(scripts/cross-toolchain.sh):$PATH"
#   cargo zigbuild --release --target aarch64-unknown-linux-musl -p hearth-agent
#
# docs/deploy.md ("ARM boards") has why Zig and not Debian's cross gcc.
set -euo pipefail
zig_version=0.17.0
zigbuild_version=0.24.1
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
zig_dir="$cache_root/ziglang-$zig_version"
target=aarch64-unknown-linux-musl

rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >&2
if [[ ! -x "$zig_dir/ziglang/zig" ]]; then
    echo "cross-toolchain: installing Zig $zig_version from PyPI's ziglang" >&2
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
        "ziglang==$zig_version" >&2
    python3 -m pip install --quiet --no-deps --target "$work/installed" "$work"/ziglang-*.whl >&2
    mkdir -p "$cache_root"
    rm -rf "$zig_dir"
    mv "$work/installed" "$zig_dir"
fi
if ! cargo-zigbuild --version 2>/dev/null | grep -q " $zigbuild_version$"; then
    echo "cross-toolchain: installing cargo-zigbuild $zigbuild_version" >&2
    cargo install --quiet --locked --version "$zigbuild_version" cargo-zigbuild >&2
fi
echo "$zig_dir/ziglang"
