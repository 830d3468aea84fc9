#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while. Needs cargo-fuzz (`cargo install
# cargo-fuzz`) and a nightly toolchain, or, without one, the stable
# toolchain with RUSTC_BOOTSTRAP=1 (what cargo-fuzz's flags need).
#
#   scripts/fuzz.sh CRATE_DIR TARGET SECONDS
#   scripts/fuzz.sh acl policy_parse 600
set -euo pipefail
cd "$(dirname "$0")/.."
crate="$1" target="$2" seconds="${3:-600}"
corpus="$crate/fuzz/corpus/$target"
mkdir -p "$corpus"
# Seeds of our own, plus (when present) the conformance policies from ../shared.
cp -n "$crate"/fuzz/seeds/* "$corpus"/ 2>/dev/null || true
if [[ "$target" == policy_parse && -d ../shared/conformance/tailscale-policy ]]; then
    python3 - "$corpus" <<'PY'
import json, glob, sys, os
for path in glob.glob('../shared/conformance/tailscale-policy/*/*.json'):
    name = os.path.join(sys.argv[1], 'conformance-' + os.path.basename(path))
    if not os.path.exists(name):
        open(name, 'w').write(json.dumps(json.load(open(path))['policy']))
PY
fi
# Recordings in every format an app sends (the speech tests' fixtures).
if [[ "$target" == audio ]]; then
    cp -n speech/tests/fixtures/* "$corpus"/ 2>/dev/null || true
fi
# The real attestation documents from ../shared (read there, never committed).
if [[ "$target" == evidence && -d ../shared/research/attestation-fixtures ]]; then
    find ../shared/research/attestation-fixtures -type f \( -name '*.b64' -o -name '*.report' \
        -o -name '*.cbor' -o -name '*attestation*' -o -name '*-doc-*' \) \
        -exec sh -c 'cp -n "$1" "$2/fixture-$(basename "$1")"' _ {} "$corpus" \;
fi
cd "$crate/fuzz"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    exec cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=65536
fi
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=65536
