#!/usr/bin/env bash
# Builds Hearth's container images from static (musl) binaries. Builds only:
# deploying is podman/deploy-*.sh, which never builds.
#
#   podman/build-images.sh [gateway] [messaging] [coordinator]   (default: all three)
#
# Needs the Rust target x86_64-unknown-linux-musl (`rustup target add`) and
# musl-gcc (Debian: musl-tools) for the C parts (SQLite, ring). Images are
# tagged localhost/hearth-COMPONENT:VERSION and :latest.
set -euo pipefail
cd "$(dirname "$0")/.."
components=("$@")
((${#components[@]})) || components=(gateway messaging coordinator)
target=x86_64-unknown-linux-musl
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"

packages=()
for component in "${components[@]}"; do
    case "$component" in
        gateway | messaging | coordinator) packages+=(-p "hearth-$component") ;;
        *) echo "build-images: unknown component $component (gateway, messaging, coordinator)" >&2; exit 2 ;;
    esac
done
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}" \
    cargo build --release --locked --target "$target" "${packages[@]}" --bins

for component in "${components[@]}"; do
    context="$(mktemp -d)"
    trap 'rm -rf "$context"' EXIT
    mkdir -p "$context/bin" "$context/data"
    # Static, and without debug info: the image is the binary.
    objcopy --strip-debug "target/$target/release/hearth-$component" "$context/bin/hearth-$component"
    if ! file "$context/bin/hearth-$component" | grep -q "static"; then
        echo "build-images: hearth-$component is not statically linked" >&2
        exit 1
    fi
    podman build --quiet --file "podman/Containerfile.$component" \
        --tag "localhost/hearth-$component:$version" --tag "localhost/hearth-$component:latest" "$context"
    rm -rf "$context"
    trap - EXIT
done
