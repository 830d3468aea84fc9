#!/usr/bin/env bash
# Handshake-flood benchmark, in network namespaces on this machine (root).
#
# A host on the LAN that is not in the mesh sends forged WireGuard handshake
# initiations (type 1, 148 random bytes: it does not know the target's
# public key) at the hub's WireGuard port, at each RATE in turn, while a
# member pings the hub through its tunnel. The same flood hits a pair of
# wireguard-go peers (Debian's package, configured with `wg`) on the same
# namespaces and underlay, measured in the same run. Prints, per rate and
# per implementation, the ping loss and the round trip.
#
#   scripts/bench-flood.sh [SECONDS] [RATE...]      # defaults: 8 25000 160000
#
# Needs: release builds of hearth-coordinator, hearth-agent and hearth-probe
# (built here), iproute2, nftables, wireguard-go, wireguard-tools.
set -euo pipefail
umask 077
cd "$(dirname "$0")/.."
seconds="${1:-8}"
shift || true
rates=("$@")
((${#rates[@]})) || rates=(25000 160000)
[[ "$(id -u)" == 0 ]] || { echo "bench-flood: needs root" >&2; exit 1; }
for tool in ip nft wireguard-go wg ping; do
    command -v "$tool" >/dev/null || { echo "bench-flood: $tool is missing (scripts/install-test-deps.sh)" >&2; exit 1; }
done
cargo build --release -q -p hearth-coordinator -p hearth-agent -p hearth-testkit --bins
bin="$PWD/target/release"

source scripts/lab.sh
lab_up "hf$$" c a b x
hub_underlay=10.77.0.3

# Hearth: a coordinator, the hub (a) and a member (b).
lab_coordinator c 10.77.0.2
for side in a b; do
    run_in "$side" "$bin/hearth-agent" --state-dir "$work/$side" up --token-file "$work/token" \
        --hostname "$side" --interface "${lab_prefix}$side" --backend userspace --no-magic-dns >"$work/$side.log" 2>&1 &
done
for _ in $(seq 200); do run_in a ip -4 addr show "${lab_prefix}a" 2>/dev/null | grep -q 100.64 && break; sleep 0.05; done
a_address=$(run_in a ip -4 -o addr show "${lab_prefix}a" | awk '{print $4}' | cut -d/ -f1)
for _ in $(seq 200); do run_in b ping -c 1 -W 0.2 "$a_address" >/dev/null 2>&1 && break; sleep 0.05; done
hearth_port=$(run_in a "$bin/hearth-agent" --state-dir "$work/a" status --output json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["listen_port"])')

# wireguard-go on the same two hosts, port 51820.
wg_pair a b "$hub_underlay" 10.77.0.4

# measure NAME TARGET PORT RATE: ping the hub over the tunnel while the flood runs.
measure() {
    local name="$1" target="$2" port="$3" rate="$4" count flood=""
    count=$((seconds * 50))
    if ((rate > 0)); then
        run_in x "$bin/hearth-probe" flood "$hub_underlay" "$port" "$rate" "$((seconds + 2))" >"$work/flood.out" &
        flood=$!
        sleep 1
    fi
    local out
    out=$(run_in b ping -q -c "$count" -i 0.02 -W 1 "$target" 2>&1 || true)
    local sent=0
    if [[ -n "$flood" ]]; then
        wait "$flood"
        sent=$(( $(cat "$work/flood.out") / (seconds + 2) ))
    fi
    local loss rtt
    loss=$(grep -o '[0-9.]*% packet loss' <<<"$out" | cut -d% -f1)
    rtt=$(grep -o 'rtt [^=]*= [0-9./]*' <<<"$out" | awk '{print $4}')
    local avg max
    avg=$(cut -d/ -f2 <<<"${rtt:-//}"); max=$(cut -d/ -f3 <<<"${rtt:-//}")
    printf '%-14s flood %6s pkt/s (sent %6s/s)  loss %5s %%  rtt avg %7s ms  max %7s ms\n' \
        "$name" "$rate" "$sent" "${loss:-?}" "${avg:--}" "${max:--}"
}
echo "flood benchmark: ${seconds}s of pings every 20 ms per case"
for rate in 0 "${rates[@]}"; do
    measure hearth "$a_address" "$hearth_port" "$rate"
    measure wireguard-go 10.99.0.1 51820 "$rate"
done
