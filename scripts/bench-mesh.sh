#!/usr/bin/env bash
# Mesh benchmark, in network namespaces on this machine (root):
#  - join time: from `hearth-agent up` (pre-approved key) to the first ping reply
#    over the tunnel;
#  - TCP throughput (iperf3) between two Hearth agents, and between two
#    wireguard-go peers (Debian's package) configured with `wg`, measured in the
#    same run, alternating, on the same namespaces and underlay.
#
#   scripts/bench-mesh.sh [ROUNDS] [SECONDS]
#
# Needs: release builds of hearth-coordinator and hearth-agent (built here),
# iproute2, nftables, iperf3, wireguard-go, wireguard-tools.
set -euo pipefail
umask 077
cd "$(dirname "$0")/.."
rounds="${1:-3}"
seconds="${2:-8}"
[[ "$(id -u)" == 0 ]] || { echo "bench-mesh: needs root" >&2; exit 1; }
for tool in ip nft iperf3 wireguard-go wg; do
    command -v "$tool" >/dev/null || { echo "bench-mesh: $tool is missing (scripts/install-test-deps.sh)" >&2; exit 1; }
done
cargo build --release -q -p hearth-coordinator -p hearth-agent
bin="$PWD/target/release"

source scripts/lab.sh
lab_up "hb$$" c a b

# Coordinator and a pre-approved key.
lab_coordinator c 10.77.0.2

# Agent b first, then time agent a from `up` to its first ping reply to b.
run_in b "$bin/hearth-agent" --state-dir "$work/b" up --token-file "$work/token" --hostname b \
    --interface "${lab_prefix}b" >"$work/b.log" 2>&1 &
for _ in $(seq 200); do run_in b ip -4 addr show "${lab_prefix}b" 2>/dev/null | grep -q 100.64 && break; sleep 0.05; done
start=$(date +%s%N)
run_in a "$bin/hearth-agent" --state-dir "$work/a" up --token-file "$work/token" --hostname a \
    --interface "${lab_prefix}a" >"$work/a.log" 2>&1 &
b_address=$(run_in b ip -4 -o addr show "${lab_prefix}b" | awk '{print $4}' | cut -d/ -f1)
until run_in a ping -c 1 -W 0.05 -i 0.01 "$b_address" >/dev/null 2>&1; do
    if (( ($(date +%s%N) - start) > 20000000000 )); then echo "bench-mesh: no ping reply within 20 s" >&2; exit 1; fi
done
join_ms=$(( ($(date +%s%N) - start) / 1000000 ))

# The wireguard-go pair on the same underlay, its own port and addresses.
wg_pair a b 10.77.0.3 10.77.0.4

measure() { # target
    run_in b iperf3 -s -1 >/dev/null 2>&1 &
    sleep 0.3
    run_in a iperf3 -c "$1" -t "$seconds" -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}
hearth=(); wggo=()
for round in $(seq "$rounds"); do
    hearth+=("$(measure "$b_address")")
    wggo+=("$(measure 10.99.0.2)")
    echo "round $round: hearth ${hearth[-1]} Mbit/s, wireguard-go ${wggo[-1]} Mbit/s" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
h=$(median "${hearth[@]}"); g=$(median "${wggo[@]}")
backend=$(run_in a "$bin/hearth-agent" --state-dir "$work/a" status --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backend"])')
echo "join time (up -> first ping reply, pre-approved key): ${join_ms} ms"
echo "throughput, median of $rounds x ${seconds}s iperf3: hearth ($backend) ${h} Mbit/s, wireguard-go $(wireguard-go --version 2>/dev/null | head -1 | awk '{print $2}') ${g} Mbit/s"
python3 -c "print(f'ratio hearth / wireguard-go: {$h/$g:.2f}')"
