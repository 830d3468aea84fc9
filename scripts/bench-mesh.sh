#!/usr/bin/env bash
# Mesh benchmark, in network namespaces on this machine (root):
#  - join time: from `hearth-agent up` (pre-approved key) to the first ping reply
#    over the tunnel;
#  - three data planes measured in the same run, round by round, on one bridge
#    (veth underlay): two Hearth agents (hosts a, b), two official `tailscaled`
#    1.96.4 with a real TUN joined through the same Hearth coordinator (hosts
#    d, e: a tailscaled beside an agent would route the agents' addresses
#    into its own tunnel), and two Debian wireguard-go peers configured with
#    `wg` (hosts a, b);
#  - per data plane: iperf3 TCP with 1 and with 4 streams, the CPU its
#    processes used per Gbit moved (both ends, 4 streams), and ping round
#    trips while 4 streams run.
#
#   scripts/bench-mesh.sh [ROUNDS] [SECONDS]
#
# Needs: release builds of hearth-coordinator and hearth-agent (built here),
# iproute2, nftables, iperf3, wireguard-go, wireguard-tools, and the official
# Tailscale client (scripts/tailscale-client.sh, cached outside the repo).
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
ts="$(PATH="$(dirname "$(scripts/python-env.sh)"):$PATH" scripts/tailscale-client.sh)"

source scripts/lab.sh
lab_up "hb$$" c a b d e

# Coordinator and a pre-approved key.
lab_coordinator c 10.77.0.2

# Agent b first, then time agent a from `up` to its first ping reply to b.
run_in b "$bin/hearth-agent" --state-dir "$work/b" up --token-file "$work/token" --hostname b \
    --interface "${lab_prefix}b" --no-magic-dns >"$work/b.log" 2>&1 &
for _ in $(seq 200); do run_in b ip -4 addr show "${lab_prefix}b" 2>/dev/null | grep -q 100.64 && break; sleep 0.05; done
start=$(date +%s%N)
run_in a "$bin/hearth-agent" --state-dir "$work/a" up --token-file "$work/token" --hostname a \
    --interface "${lab_prefix}a" --no-magic-dns >"$work/a.log" 2>&1 &
b_address=$(run_in b ip -4 -o addr show "${lab_prefix}b" | awk '{print $4}' | cut -d/ -f1)
until run_in a ping -c 1 -W 0.05 -i 0.01 "$b_address" >/dev/null 2>&1; do
    if (( ($(date +%s%N) - start) > 20000000000 )); then echo "bench-mesh: no ping reply within 20 s" >&2; exit 1; fi
done
join_ms=$(( ($(date +%s%N) - start) / 1000000 ))

# The wireguard-go pair on the same underlay, its own port and addresses.
wg_pair a b 10.77.0.3 10.77.0.4

# Two official tailscaled with real TUN devices, joined through the same
# coordinator (it speaks their control protocol) with the same key.
ts_pair d e
e_address=$(tsctl e ip -4)
for _ in $(seq 100); do run_in d ping -c 1 -W 0.2 "$e_address" >/dev/null 2>&1 && break; sleep 0.1; done
tsctl d ping --timeout 10s "$e_address" 2>&1 | tail -1 >&2 || true

# Where each data plane runs: client host, server host, target address,
# the process name whose CPU counts.
declare -A client=([hearth]=a [tailscaled]=d [wireguard-go]=a)
declare -A server=([hearth]=b [tailscaled]=e [wireguard-go]=b)
declare -A target=([hearth]="$b_address" [tailscaled]="$e_address" [wireguard-go]=10.99.0.2)
declare -A process=([hearth]=hearth-agent [tailscaled]=tailscaled [wireguard-go]=wireguard-go)
planes=(hearth tailscaled wireguard-go)

cpu_ticks() { # PROCESS HOST...: user + system ticks of PROCESS in those hosts
    local name="$1" host pid total=0
    shift
    for host in "$@"; do
        for pid in $(ip netns pids "$lab_prefix-$host"); do
            [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] || continue
            total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
        done
    done
    echo "$total"
}
iperf() { # PLANE STREAMS: prints Mbit/s; a run that stalls fails the bench
    local plane="$1" streams="$2"
    run_in "${server[$plane]}" iperf3 -s -1 >/dev/null 2>&1 &
    sleep 0.3
    run_in "${client[$plane]}" timeout $((seconds + 30)) iperf3 -c "${target[$plane]}" -P "$streams" -t "$seconds" -J \
        --connect-timeout 10000 \
        | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}
declare -A single four cpu rtt
for round in $(seq "$rounds"); do
    for plane in "${planes[@]}"; do
        single[$plane]+="$(iperf "$plane" 1) "
        before=$(cpu_ticks "${process[$plane]}" "${client[$plane]}" "${server[$plane]}")
        mbit=$(iperf "$plane" 4)
        after=$(cpu_ticks "${process[$plane]}" "${client[$plane]}" "${server[$plane]}")
        four[$plane]+="$mbit "
        # CPU seconds per Gbit moved: ticks / CLK_TCK over (Mbit/s x s / 1000).
        cpu[$plane]+="$(python3 -c "print(round(($after-$before)/$(getconf CLK_TCK)/($mbit*$seconds/1000),3))") "
        # Round trips while 4 streams run.
        run_in "${server[$plane]}" iperf3 -s -1 >/dev/null 2>&1 &
        sleep 0.3
        run_in "${client[$plane]}" timeout $((seconds + 30)) iperf3 -c "${target[$plane]}" -P 4 -t "$seconds" >/dev/null 2>&1 &
        load=$!
        sleep 1
        rtt[$plane]+="$(run_in "${client[$plane]}" ping -q -i 0.05 -c $(( (seconds - 2) * 20 )) "${target[$plane]}" \
            | awk -F/ '/^rtt/ {print $5}') "
        wait "$load" || true
        echo "round $round $plane: 1 stream $(awk '{print $NF}' <<<"${single[$plane]}"), 4 streams $mbit Mbit/s" >&2
    done
done
median() { printf '%s\n' $@ | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
backend=$(run_in a "$bin/hearth-agent" --state-dir "$work/a" status --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backend"])')
echo "join time (up -> first ping reply, pre-approved key): ${join_ms} ms"
echo "hearth data plane: $backend; tailscaled $("$ts/tailscaled" --version | head -1); wireguard-go $(wireguard-go --version 2>/dev/null | head -1 | awk '{print $2}')"
echo "medians of $rounds rounds x ${seconds}s:"
printf '%-13s %12s %12s %16s %22s\n' plane "1 stream" "4 streams" "CPU s per Gbit" "ping under load (ms)"
for plane in "${planes[@]}"; do
    printf '%-13s %7s Mbit/s %7s Mbit/s %16s %22s\n' "$plane" "$(median ${single[$plane]})" \
        "$(median ${four[$plane]})" "$(median ${cpu[$plane]})" "$(median ${rtt[$plane]})"
done
h=$(median ${four[hearth]}); t=$(median ${four[tailscaled]}); g=$(median ${four[wireguard-go]})
python3 -c "print(f'4 streams: hearth / tailscaled {$h/$t:.2f}, hearth / wireguard-go {$h/$g:.2f}')"
for plane in "${planes[@]}"; do echo "rounds $plane: 1 stream ${single[$plane]}| 4 streams ${four[$plane]}| CPU ${cpu[$plane]}| RTT ${rtt[$plane]}"; done
