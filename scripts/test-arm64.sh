#!/usr/bin/env bash
# Builds the pure crates' tests for arm64 (aarch64-unknown-linux-musl, linked
# by Zig through cargo-zigbuild) and runs them under Debian's qemu-aarch64-static
# as cargo's runner: the policy engine against Tailscale's answers, the
# attestation verifier against real Nitro/SEV-SNP/TDX documents, HPKE and
# OHTTP against their test vectors, the transparency log, the SSE reader, the
# roster, the assistant's readers. A wrong byte order, a pointer-width
# assumption or a C dependency that builds differently for arm64 fails here.
#
#   scripts/test-arm64.sh            # every pure crate
#   scripts/test-arm64.sh hearth-acl # only the crates named
#
# Not in CI, whose 45 minutes it would nearly fill: 3 minutes 14 s on two
# cores from an empty target folder (231 tests), plus Zig and cargo-zigbuild
# the first time (docs/benchmarks.md, "arm64: builds and sizes"). Needs
# qemu-user-static (Debian); the toolchain comes from scripts/cross-toolchain.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-musl
crates=("$@")
if [[ ${#crates[@]} -eq 0 ]]; then
    crates=(hearth-acl hearth-attest hearth-e2ee hearth-ohttp hearth-sse hearth-transparency
        hearth-roster hearth-assistant)
fi
if ! command -v qemu-aarch64-static >/dev/null; then
    echo "test-arm64: qemu-aarch64-static is missing (apt-get install qemu-user-static)" >&2
    exit 1
fi
zig_dir="$(scripts/cross-toolchain.sh)"
export PATH="$zig_dir:$PATH"
# cargo runs every test binary through the emulator; binfmt is not needed.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static
# Kept apart from the host build so neither invalidates the other.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/arm64"
package_args=()
for crate in "${crates[@]}"; do package_args+=(-p "$crate"); done
cargo-zigbuild test --locked --target "$target" "${package_args[@]}"
# Proof the tests ran as arm64 code, not as host binaries.
some_test="$(find "$CARGO_TARGET_DIR/$target/debug/deps" -maxdepth 1 -type f -perm -u+x \
    -name 'hearth_acl-*' | head -n 1)"
if [[ -n "$some_test" ]]; then
    file -b "$some_test" | grep -q 'ARM aarch64' ||
        { echo "test-arm64: $some_test is not an arm64 binary" >&2; exit 1; }
    echo "test-arm64: test binaries are $(file -b "$some_test" | cut -d, -f1-2)"
fi
