#!/usr/bin/env bash
# Mesh soak, in network namespaces on this machine (root): two Hearth agents
# (hosts a, b) beside a wireguard-go pair on the same hosts (10.99.0.1/.2,
# MTU 1420: another VPN, as in scripts/bench-mesh.sh) and two official
# tailscaled (hosts d, e) in the same network, for MINUTES: bursts of
# traffic (iperf3 a to b, pings a to d) with idle gaps longer than an
# agent's 45 s "in use" window between them. It fails (and keeps the lab's
# logs) when a burst after a gap moves less than half of the first one, when
# a burst stalls, or when an agent's path to any peer switched more than
# twice (the first relay-to-direct counts one); it prints every burst and
# every switch.
#
#   scripts/soak-mesh.sh [MINUTES]        (default 5)
#
# Needs what scripts/bench-mesh.sh needs.
set -euo pipefail
umask 077
cd "$(dirname "$0")/.."
minutes="${1:-5}"
gap=50
[[ "$(id -u)" == 0 ]] || { echo "soak-mesh: needs root" >&2; exit 1; }
for tool in ip nft iperf3 wireguard-go wg; do
    command -v "$tool" >/dev/null || { echo "soak-mesh: $tool is missing (scripts/install-test-deps.sh)" >&2; exit 1; }
done
cargo build --release -q -p hearth-coordinator -p hearth-agent
bin="$PWD/target/release"
ts="$(PATH="$(dirname "$(scripts/python-env.sh)"):$PATH" scripts/tailscale-client.sh)"

source scripts/lab.sh
lab_up "hs$$" c a b d e
lab_coordinator c 10.77.0.2
wg_pair a b 10.77.0.3 10.77.0.4
for side in a b; do
    run_in "$side" env HEARTH_LOG=info "$bin/hearth-agent" --state-dir "$work/$side" up \
        --token-file "$work/token" --hostname "$side" --interface "${lab_prefix}$side" \
        --no-magic-dns >"$work/$side.log" 2>&1 &
done
ts_pair d e
for _ in $(seq 200); do run_in b ip -4 addr show "${lab_prefix}b" 2>/dev/null | grep -q 100.64 && break; sleep 0.05; done
b_address=$(run_in b ip -4 -o addr show "${lab_prefix}b" | awk '{print $4}' | cut -d/ -f1)
d_address=$(tsctl d ip -4)
for _ in $(seq 200); do run_in a ping -c 1 -W 0.2 "$b_address" >/dev/null 2>&1 && break; done
run_in b iperf3 -s >/dev/null 2>&1 &

burst() { # prints Mbit/s a to b over 5 s; a stalled burst fails the soak
    run_in a timeout 40 iperf3 -c "$b_address" -t 5 -J --connect-timeout 10000 \
        | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}
end=$(( $(date +%s) + minutes * 60 ))
first=""
round=0
while (( $(date +%s) < end )); do
    round=$((round + 1))
    mbit=$(burst)
    run_in a ping -q -c 5 -i 0.2 -W 2 "$d_address" >/dev/null || { echo "soak-mesh: a cannot reach tailscaled d" >&2; exit 1; }
    echo "burst $round: $mbit Mbit/s a to b" >&2
    first="${first:-$mbit}"
    if (( mbit * 2 < first )); then
        echo "soak-mesh: burst $round moved $mbit Mbit/s, under half of the first ($first)" >&2
        exit 1
    fi
    sleep "$gap"
done
failed=0
for side in a b; do
    switches=$(grep -E '"direct path"|direct path|path through the relay' "$work/$side.log" || true)
    echo "agent $side path switches:" >&2
    echo "${switches:-  none}" | sed 's/^/  /' >&2
    for peer in $(grep -oE 'peer=[^ ]+' <<<"$switches" | sort -u); do
        count=$(grep -c -- "$peer" <<<"$switches")
        if (( count > 2 )); then
            echo "soak-mesh: agent $side switched its path to $peer $count times" >&2
            failed=1
        fi
    done
done
echo "soak: $round bursts over $minutes min, idle ${gap}s between; first $first Mbit/s; every burst at least half of it; at most 2 path switches per agent and peer"
exit "$failed"
