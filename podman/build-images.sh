#!/usr/bin/env bash
# Builds Hearth's container images from static (musl) binaries. Builds only:
# deploying is `hearth pod render` and podman/deploy-*.sh, which never build.
#
#   podman/build-images.sh [gateway] [messaging] [coordinator] [router] [compute]
#                          [ohttp-gateway] [relay] [auth]
#                                            (default: gateway, messaging, coordinator)
#   podman/build-images.sh --binaries [COMPONENT...]
#                                            the static binaries only (the hub's and
#                                            the edge's come with the sandbox probe
#                                            and the packages' hearth and
#                                            hearth-agent; default: every image's)
#
# `compute` is the private-compute node's image: hearth-enclave, llama-server
# (HEARTH_LLAMA_SERVER, default the one scripts/build-llama-server.sh cached)
# with the shared libraries it links, and the model HEARTH_COMPUTE_MODEL
# (a GGUF file; required). The model is part of the image, and so of an
# enclave's measurements.
#
# Needs the Rust target x86_64-unknown-linux-musl (`rustup target add`) and
# musl-gcc (Debian: musl-tools) for the C parts (SQLite, ring). Images are
# tagged localhost/hearth-COMPONENT:VERSION and :latest (HEARTH_IMAGE_TAG:
# only :HEARTH_IMAGE_TAG).
#
# Reproducible: the same sources, toolchain and inputs give the same
# binaries and the same image (same image id) wherever they are built: the
# checkout's, Cargo's and the target directory's paths are remapped out of
# the binaries (Rust and C), and every timestamp in the image is
# SOURCE_DATE_EPOCH (default 0). So anyone can rebuild the compute image
# and compare its measurements with the transparency log's
# (docs/private-compute.md, "Rebuilding the compute image").
set -euo pipefail
cd "$(dirname "$0")/.."
# Run from a test (`cargo test` sets these for the package under test), a
# build would see another package's values: some build scripts rerun when
# CARGO_MANIFEST_DIR or CARGO_PKG_NAME changes, and everything after them
# is compiled again for each test that builds images.
while IFS='=' read -r name _; do
    case "$name" in
        CARGO_MANIFEST_* | CARGO_PKG_* | CARGO_CRATE_NAME | CARGO_PRIMARY_PACKAGE | CARGO_BIN_NAME | CARGO_TARGET_TMPDIR | OUT_DIR)
            unset "$name" ;;
    esac
done < <(env)
binaries_only=false
if [[ "${1:-}" == --binaries ]]; then
    binaries_only=true
    shift
fi
components=("$@")
if ((${#components[@]} == 0)); then
    if $binaries_only; then
        components=(gateway compute)
    else
        components=(gateway messaging coordinator)
    fi
fi
# HEARTH_ARCH: amd64 (the default) or arm64 (cross-compiled with Zig,
# scripts/cross-toolchain.sh; images tagged VERSION-arm64 and latest-arm64).
arch="${HEARTH_ARCH:-amd64}"
case "$arch" in
    amd64) target=x86_64-unknown-linux-musl; suffix=""; objcopy=objcopy ;;
    # Debian's binutils-aarch64-linux-gnu (the host's objcopy reads no
    # arm64 files).
    arm64) target=aarch64-unknown-linux-musl; suffix="-arm64"; objcopy=aarch64-linux-gnu-objcopy ;;
    *) echo "build-images: HEARTH_ARCH is amd64 or arm64, not $arch" >&2; exit 2 ;;
esac
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"

# The images of the hub (the pod, the coordinator) and of private
# compute's edge, and the hub's Debian packages (packaging/build-debs.sh:
# hearth, hearth-coordinator, hearth-agent), come from one build of one
# fixed set of packages, whichever of them are asked for: Cargo resolves
# features for the packages it is given, so another set would compile much
# of the tree again (the tests build images and packages in turn, and this
# keeps it to one build). The compute node's image is built from its own
# crate alone, so that rebuilding it (docs/private-compute.md) compiles
# only what it needs.
hub_packages=(-p hearth-gateway -p hearth-messaging -p hearth-router -p hearth-oblivious
    -p hearth-sandbox-probe -p hearth-coordinator -p hearth-agent -p hearth-hub)
build_hub=false
build_compute=false
for component in "${components[@]}"; do
    case "$component" in
        gateway | messaging | coordinator | router | ohttp-gateway | relay | auth | hub) build_hub=true ;;
        compute)
            [[ "$arch" == amd64 ]] || { echo "build-images: the compute image is amd64 only (its TEEs are)" >&2; exit 2; }
            build_compute=true
            $binaries_only && continue
            [[ -f "${HEARTH_COMPUTE_MODEL:-}" ]] ||
                { echo "build-images: set HEARTH_COMPUTE_MODEL to the GGUF model the compute image serves" >&2; exit 2; }
            llama="${HEARTH_LLAMA_SERVER:-${HEARTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}/llama-server-$(cat scripts/llama-cpp-python.version)/llama-server}"
            [[ -x "$llama" ]] ||
                { echo "build-images: no llama-server at $llama: run scripts/build-llama-server.sh or set HEARTH_LLAMA_SERVER" >&2; exit 2; }
            ;;
        *) echo "build-images: unknown component $component (gateway, messaging, coordinator, hub, router, compute, ohttp-gateway, relay, auth)" >&2; exit 2 ;;
    esac
done
if [[ "$arch" == amd64 ]]; then
    rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
fi
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
# The last matching remapping wins: the target directory may sit inside
# the checkout.
remap="--remap-path-prefix=$PWD=/hearth --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$target_dir=/target"
c_remap="-ffile-prefix-map=$PWD=/hearth -ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$target_dir=/target"
# HEARTH_IMAGE_EPOCH dates the images alone (packaging/build-debs.sh gives
# its commit's time): SOURCE_DATE_EPOCH in cargo's environment would
# rebuild every binary (a build script watches it).
epoch="${HEARTH_IMAGE_EPOCH:-${SOURCE_DATE_EPOCH:-0}}"
# No debug info: the images carry none (it is stripped below), and not
# making it saves a good part of the build.
release_build() {
    if [[ "$arch" == arm64 ]]; then
        PATH="$(scripts/cross-toolchain.sh):$PATH" \
            CARGO_PROFILE_RELEASE_DEBUG=false \
            RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$remap" \
            CFLAGS_aarch64_unknown_linux_musl="${CFLAGS_aarch64_unknown_linux_musl:+$CFLAGS_aarch64_unknown_linux_musl }$c_remap" \
            cargo zigbuild --release --locked --target "$target" "$@" --bins
        return
    fi
    CARGO_PROFILE_RELEASE_DEBUG=false \
        RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$remap" \
        CFLAGS_x86_64_unknown_linux_musl="${CFLAGS_x86_64_unknown_linux_musl:+$CFLAGS_x86_64_unknown_linux_musl }$c_remap" \
        CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}" \
        cargo build --release --locked --target "$target" "$@" --bins
}
$build_hub && release_build "${hub_packages[@]}"
$build_compute && release_build -p hearth-enclave
$binaries_only && exit 0

for component in "${components[@]}"; do
    context="$(mktemp -d)"
    trap 'rm -rf "$context"' EXIT
    mkdir -p "$context/bin" "$context/data"
    case "$component" in
        hub) binary=hearth ;;
        compute) binary=hearth-enclave ;;
        ohttp-gateway) binary=hearth-ohttp-gateway ;;
        relay) binary=hearth-ohttp-relay ;;
        auth) binary=hearth-pcc-auth ;;
        *) binary="hearth-$component" ;;
    esac
    # Static, and without debug info: the image is the binary.
    "$objcopy" --strip-debug "$target_dir/$target/release/$binary" "$context/bin/$binary"
    if ! file "$context/bin/$binary" | grep -q "static"; then
        echo "build-images: $binary is not statically linked" >&2
        exit 1
    fi
    if [[ "$component" == hub ]]; then
        # The coordinator and the agent beside `hearth`; the agent's `ip`
        # and `nft`, with the libraries they link (ldd's resolved paths,
        # kept at those paths) and the loader.
        for more in hearth-coordinator hearth-agent; do
            "$objcopy" --strip-debug "$target_dir/$target/release/$more" "$context/bin/$more"
        done
        mkdir -p "$context/sbin" "$context/lib" "$context/lib64" "$context/etc" "$context/share/images"
        # llama-server (the hearth-llama-server package's, for the model in
        # the pod: `hearth service llama`) and the packaged small model.
        hub_llama="$(HEARTH_ARCH="$arch" scripts/build-llama-server.sh)"
        mkdir -p "$context/libexec" "$context/share/models"
        "$objcopy" --strip-debug "$hub_llama" "$context/libexec/llama-server"
        cp "$(scripts/smollm2.sh)" "$context/share/models/"
        # The search model (the hearth-model-e5 package's, at its path):
        # `hearth service embeddings` serves it in the pod.
        mkdir -p "$context/share/embeddings"
        cp "$(scripts/e5-model.sh)" "$context/share/embeddings/multilingual-e5-small.q4_0.gguf"
        if [[ "$arch" == arm64 ]]; then
            # Debian's arm64 `ip` and `nft`, from their packages
            # (scripts/arm64-sysroot.sh), and what they and llama-server
            # link (the C++ runtime and OpenMP of the same Debian, so one
            # glibc), asked of the arm64 loader under emulation.
            sysroot="$(scripts/arm64-sysroot.sh iproute2 nftables libstdc++6 libgomp1)"
            list() { qemu-aarch64-static -L "$sysroot" "$sysroot/lib/ld-linux-aarch64.so.1" --list "$1"; }
            for program in bin/ip usr/sbin/nft; do
                cp -L "$sysroot/$program" "$context/sbin/"
                list "$sysroot/$program" | awk '$3 ~ /^\// && $1 !~ /ld-linux/ { print $3 }'
            done | sort -u | while read -r library; do
                cp -L "$sysroot$library" "$context/lib/"
            done
            list "$context/libexec/llama-server" | awk '$3 ~ /^\// && $1 !~ /ld-linux/ { print $3 }' |
                while read -r library; do
                    cp -L "$sysroot$library" "$context/lib/"
                done
            cp -L "$sysroot/lib/ld-linux-aarch64.so.1" "$context/lib/"
        else
            for program in /usr/sbin/ip /usr/sbin/nft "$hub_llama"; do
                [[ "$program" == "$hub_llama" ]] || cp -L "$program" "$context/sbin/"
                ldd "$program" | awk '$3 ~ /^\// { print $3 }'
            done | sort -u | while read -r library; do
                cp -L "$library" "$context/lib/"
            done
            loader="$(ldd /usr/sbin/nft | awk '$1 ~ /^\/lib/ { print $1 }')"
            mkdir -p "$context/$(dirname "${loader#/}")"
            cp -L "$loader" "$context/${loader#/}"
        fi
        cp /etc/protocols /etc/services "$context/etc/" 2>/dev/null || true
        image_tag="${HEARTH_IMAGE_TAG:-$version}$suffix"
        printf '{"gateway": "localhost/hearth-gateway:%s", "messaging": "localhost/hearth-messaging:%s", "hub": "localhost/hearth-hub:%s"}\n' \
            "$image_tag" "$image_tag" "$image_tag" >"$context/share/images/images.json"
    fi
    if [[ "$component" == compute ]]; then
        mkdir -p "$context/lib" "$context/lib64" "$context/models"
        objcopy --strip-debug "$llama" "$context/bin/llama-server"
        # Exactly the libraries it links (ldd's resolved paths), and the loader.
        ldd "$llama" | awk '$3 ~ /^\// { print $3 }' | while read -r library; do
            cp -L "$library" "$context/lib/"
        done
        cp -L /lib64/ld-linux-x86-64.so.2 "$context/lib64/"
        cp "$HEARTH_COMPUTE_MODEL" "$context/models/model.gguf"
    fi
    if [[ -n "${HEARTH_IMAGE_TAG:-}" ]]; then
        tags=(--tag "localhost/hearth-$component:$HEARTH_IMAGE_TAG$suffix")
    else
        tags=(--tag "localhost/hearth-$component:$version$suffix" --tag "localhost/hearth-$component:latest$suffix")
    fi
    # Files in the context carry this build's times; the image's are all
    # the epoch's. No layer cache: its key leaves out the epoch, so a
    # cached layer would bring an earlier build's date.
    podman build --quiet --no-cache --arch "$arch" --timestamp "$epoch" --file "podman/Containerfile.$component" \
        "${tags[@]}" "$context"
    if [[ "$component" == compute ]]; then
        echo "build-images: compute measurements: image $(podman image inspect --format '{{.Id}}' "${tags[1]}"), hearth-enclave sha384 $(sha384sum "$context/bin/hearth-enclave" | cut -d' ' -f1)" >&2
    fi
    rm -rf "$context"
    trap - EXIT
done
