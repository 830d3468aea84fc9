#!/usr/bin/env bash
# Fetches the real chat templates llama.cpp keeps beside its sources
# (models/templates/*.jinja in PyPI's llama-cpp-python sdist, the same
# version as llama-server's build): Llama 3.x, Qwen 2.5/3, Gemma 2, Mistral,
# Phi-3.5, DeepSeek and more, as their models ship them. Caches them outside
# the repository and prints the directory.
#
#   scripts/chat-templates.sh      # fetch if missing, print the directory
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${LLAMA_CPP_PYTHON_VERSION:-$(cat "$here/llama-cpp-python.version")}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
dest="$cache_root/chat-templates-$version"
if [[ -s "$dest/meta-llama-Llama-3.1-8B-Instruct.jinja" ]]; then
    echo "$dest"
    exit 0
fi
mkdir -p "$cache_root"
exec 9>"$cache_root/chat-templates.lock"
flock 9
if [[ -s "$dest/meta-llama-Llama-3.1-8B-Instruct.jinja" ]]; then
    echo "$dest"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "chat-templates: fetching llama-cpp-python==$version's sources from PyPI" >&2
python3 -m pip download --quiet --no-binary :all: --no-deps --dest "$work" \
    "llama-cpp-python==$version" >&2
tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work" \
    --wildcards "*/vendor/llama.cpp/models/templates/*.jinja"
mkdir -p "$work/out"
cp "$work"/llama_cpp_python-"$version"/vendor/llama.cpp/models/templates/*.jinja "$work/out/"
rm -rf "$dest"
mv "$work/out" "$dest"
echo "$dest"
