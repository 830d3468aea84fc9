#!/usr/bin/env bash
# Creates (once) the Python environment the tests use, in the cache outside
# the repository, and prints its interpreter's path. The tests find it
# there, or through HEARTH_PYTHON.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
venv="$cache_root/venv"
stamp="$venv/.requirements"
if [[ -x "$venv/bin/python" ]] && cmp -s "$here/requirements-test.txt" "$stamp"; then
    echo "$venv/bin/python"
    exit 0
fi
python="$(command -v python3)" || { echo "python-env: python3 is missing" >&2; exit 1; }
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-test.txt" >&2
cp "$here/requirements-test.txt" "$stamp"
echo "$venv/bin/python"
