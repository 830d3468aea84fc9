#!/usr/bin/env bash
# Compiles the compute node's static binary from a copy of this checkout's
# sources (what git tracks) at DIR/sources, into the empty target directory
# DIR/target: the expensive half of checking that the compute image
# rebuilds elsewhere to the same image (enclave/tests/reproducible.rs does
# the rest: the image from that copy, and the comparison). scripts/test.sh
# runs it beside the tests, which is where its time goes; the test runs it
# itself when nothing did.
#
#   podman/rebuild-elsewhere.sh DIR
#
# DIR is emptied first. Writes DIR/build.log, and DIR/done holding the
# build's exit status once it has ended.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:?usage: podman/rebuild-elsewhere.sh DIR}"
rm -rf "$dir"
mkdir -p "$dir/sources" "$dir/target"
status=0
{
    git ls-files -z | while IFS= read -r -d '' file; do
        mkdir -p "$dir/sources/$(dirname "$file")"
        cp -p "$file" "$dir/sources/$file"
    done
    CARGO_TARGET_DIR="$dir/target" "$dir/sources/podman/build-images.sh" --binaries compute
} >"$dir/build.log" 2>&1 || status=$?
echo "$status" >"$dir/done.partial"
mv "$dir/done.partial" "$dir/done"
exit "$status"
