# The benchmark scripts' network lab, sourced by scripts/bench-*.sh: one
# namespace holding a bridge and one namespace per host, each host joined by
# a veth pair and addressed 10.77.0.(N+1)/24 in the order given. Everything
# (processes, namespaces, wireguard-go sockets of this prefix, the work
# directory) goes on exit; when the run failed, its logs are copied first
# into a directory of their own, whose path is printed.
#
#   source scripts/lab.sh
#   lab_up PREFIX HOST...      # sets $work; then `run_in HOST command...`

lab_up() {
    lab_prefix="$1"
    shift
    work="$(mktemp -d)"
    lab_namespaces=("$lab_prefix-sw")
    for host in "$@"; do lab_namespaces+=("$lab_prefix-$host"); done
    trap lab_down EXIT
    ip netns add "$lab_prefix-sw"
    ip -n "$lab_prefix-sw" link add br0 type bridge
    ip -n "$lab_prefix-sw" link set br0 up
    local index=1 host ns
    for host in "$@"; do
        ns="$lab_prefix-$host"
        ip netns add "$ns"
        ip link add name eth0 netns "$ns" type veth peer name "p$index" netns "$lab_prefix-sw"
        ip -n "$lab_prefix-sw" link set "p$index" master br0
        ip -n "$lab_prefix-sw" link set "p$index" up
        ip -n "$ns" addr add "10.77.0.$((index + 1))/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        index=$((index + 1))
    done
}

lab_down() {
    local status=$? ns pid kept
    # A run that failed keeps what its programs said (agents' paths,
    # coordinator, tailscaled, wireguard-go) for whoever looks into it.
    if ((status != 0)) && [[ -d "$work" ]]; then
        kept="$(mktemp -d "${TMPDIR:-/tmp}/hearth-lab-logs.XXXXXX")"
        find "$work" -maxdepth 2 -name '*.log' -exec cp --parents {} "$kept" \; 2>/dev/null || true
        echo "lab: the run failed (status $status); its logs are kept in $kept" >&2
    fi
    for ns in "${lab_namespaces[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    done
    sleep 0.2
    for ns in "${lab_namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -f /var/run/wireguard/"$lab_prefix"*.sock
    rm -rf "$work"
}

run_in() { local ns="$lab_prefix-$1"; shift; ip netns exec "$ns" "$@"; }

# wg_pair A B A_UNDERLAY B_UNDERLAY: two wireguard-go peers on hosts A and B,
# port 51820, tunnel addresses 10.99.0.1 (A) and 10.99.0.2 (B), MTU 1420.
wg_pair() {
    local a="$1" b="$2" a_under="$3" b_under="$4" side
    for side in "$a" "$b"; do
        wg genkey >"$work/wg-$side.key"
        wg pubkey <"$work/wg-$side.key" >"$work/wg-$side.pub"
        run_in "$side" wireguard-go -f "${lab_prefix}g$side" >"$work/wg-$side.log" 2>&1 &
    done
    for _ in $(seq 100); do
        [[ -S "/var/run/wireguard/${lab_prefix}g$a.sock" && -S "/var/run/wireguard/${lab_prefix}g$b.sock" ]] && break
        sleep 0.05
    done
    run_in "$a" wg set "${lab_prefix}g$a" private-key "$work/wg-$a.key" listen-port 51820 \
        peer "$(cat "$work/wg-$b.pub")" endpoint "$b_under:51820" allowed-ips 10.99.0.2/32
    run_in "$b" wg set "${lab_prefix}g$b" private-key "$work/wg-$b.key" listen-port 51820 \
        peer "$(cat "$work/wg-$a.pub")" endpoint "$a_under:51820" allowed-ips 10.99.0.1/32
    run_in "$a" ip addr add 10.99.0.1/24 dev "${lab_prefix}g$a"
    run_in "$b" ip addr add 10.99.0.2/24 dev "${lab_prefix}g$b"
    run_in "$a" ip link set "${lab_prefix}g$a" mtu 1420 up
    run_in "$b" ip link set "${lab_prefix}g$b" mtu 1420 up
    run_in "$b" ping -c 2 -W 1 10.99.0.1 >/dev/null
}

# lab_coordinator HOST ADDRESS: a coordinator in HOST listening on ADDRESS
# (8443, STUN 3478), a user `bench` and a reusable pre-approved key in
# $work/token. Needs $bin (release binaries).
lab_coordinator() {
    local host="$1" address="$2"
    run_in "$host" "$bin/hearth-coordinator" --state-dir "$work/coordinator" serve \
        --listen "$address:8443" --stun-listen "$address:3478" >"$work/coordinator.log" 2>&1 &
    for _ in $(seq 100); do [[ -S "$work/coordinator/admin.sock" ]] && break; sleep 0.05; done
    "$bin/hearth-coordinator" --state-dir "$work/coordinator" users create bench >/dev/null
    "$bin/hearth-coordinator" --state-dir "$work/coordinator" preauthkeys create --user bench \
        --reusable --pre-approved >"$work/token"
}

# ts_pair HOST...: an official tailscaled (its own TUN, port 41641) in each
# HOST, up through the lab's coordinator with $work/token as ts<HOST>.
# Needs $ts (scripts/tailscale-client.sh); defines `tsctl HOST ARGS...`.
tsctl() { local side="$1"; shift; run_in "$side" env SSL_CERT_FILE="$work/coordinator/tls/server.crt" "$ts/tailscale" --socket "$work/ts-$side/sock" "$@"; }
ts_pair() {
    local side
    for side in "$@"; do
        mkdir -p "$work/ts-$side"
        run_in "$side" env TS_NO_LOGS_NO_SUPPORT=1 TS_LOGS_DIR="$work/ts-$side" \
            SSL_CERT_FILE="$work/coordinator/tls/server.crt" \
            "$ts/tailscaled" --tun "${lab_prefix}t$side" --no-logs-no-support --port 41641 \
            --statedir "$work/ts-$side" --socket "$work/ts-$side/sock" >"$work/ts-$side.log" 2>&1 &
    done
    for side in "$@"; do
        for _ in $(seq 100); do [[ -S "$work/ts-$side/sock" ]] && break; sleep 0.05; done
        tsctl "$side" up --login-server https://10.77.0.2:8443 --authkey "$(cat "$work/token")" \
            --hostname "ts$side" --accept-dns=false --netfilter-mode=off --timeout 30s >/dev/null
    done
}
