#!/usr/bin/env bash
# Runs podman/hearth-pod.yaml (the gateway and the messaging service) from
# images podman/build-images.sh built. Deploys only: it never builds.
#
#   podman/deploy-pod.sh            # play
#   podman/deploy-pod.sh down       # stop and remove the pod (volumes stay)
#
# Settings from the environment (defaults in brackets):
#   HEARTH_MESH_ADDRESS          this hub's mesh address [from `hearth-agent status`]
#   HEARTH_POD_NAME              [hearth]; also prefixes the data volumes
#   HEARTH_GATEWAY_CONFIG_DIR    [/etc/hearth/gateway]    gateway.json5
#   HEARTH_MESSAGING_CONFIG_DIR  [/etc/hearth/messaging]  messaging.json5
#   HEARTH_WORKSPACE_DIR         [/var/lib/hearth/workspace]
#   HEARTH_DOCUMENTS_DIR         [/var/lib/hearth/documents] the household's documents (read-only)
#   HEARTH_INFERENCE_DIR         [/run/hearth-inference]  llama-server's socket
#   HEARTH_WHOIS_DIR             [/run/hearth-whois]      the agent's whois-only socket
#   HEARTH_GROUP                 [gid of hearth-inference] may use both sockets
#   HEARTH_RENDERED              [/etc/hearth/POD-pod.yaml] the filled-in YAML
#                                (systemd/hearth-pod.service plays /etc/hearth/hearth-pod.yaml)
#
# The messaging service proves itself to the gateway with a bearer token:
# gateway.token in the gateway's config dir (made here if missing, 0640, the
# group's), copied to the messaging config dir. Both configs name it
# /etc/hearth/gateway.token (gateway: auth.tokenFile; messaging:
# assistant.gatewayTokenFile).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pod="${HEARTH_POD_NAME:-hearth}"
rendered="${HEARTH_RENDERED:-/etc/hearth/$pod-pod.yaml}"
if [[ "${1:-play}" == down ]]; then
    exec podman kube down "$rendered"
fi
# The first "ipv4" of the status is this node's own (peers follow).
mesh="${HEARTH_MESH_ADDRESS:-$( (hearth-agent status --output json 2>/dev/null || true) | grep -o '"ipv4": *"[0-9.]*"' | head -1 | grep -o '[0-9.]*' | tail -1)}"
group="${HEARTH_GROUP:-$( (getent group hearth-inference || true) | cut -d: -f3)}"
[[ "$mesh" =~ ^100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.[0-9]+\.[0-9]+$ ]] ||
    { echo "deploy-pod: no mesh address (is hearth-agent up?); set HEARTH_MESH_ADDRESS" >&2; exit 2; }
[[ "$group" =~ ^[0-9]+$ ]] || { echo "deploy-pod: no group hearth-inference; set HEARTH_GROUP" >&2; exit 2; }
for image in hearth-gateway hearth-messaging; do
    podman image exists "localhost/$image:latest" ||
        { echo "deploy-pod: no image $image: run podman/build-images.sh first" >&2; exit 2; }
done
gateway_dir="${HEARTH_GATEWAY_CONFIG_DIR:-/etc/hearth/gateway}"
messaging_dir="${HEARTH_MESSAGING_CONFIG_DIR:-/etc/hearth/messaging}"
umask 077
if [[ ! -s "$gateway_dir/gateway.token" ]]; then
    head -c 32 /dev/urandom | base64 | tr -d '=+/\n' >"$gateway_dir/gateway.token.partial"
    mv "$gateway_dir/gateway.token.partial" "$gateway_dir/gateway.token"
fi
cp "$gateway_dir/gateway.token" "$messaging_dir/gateway.token"
for copy in "$gateway_dir/gateway.token" "$messaging_dir/gateway.token"; do
    chgrp "$group" "$copy"
    chmod 0640 "$copy"
done
umask 022
host_path() { printf 's#^\\([[:space:]]*hostPath: { path: \\)%s,#\\1%s,#\n' "$1" "$2"; }
mkdir -p "$(dirname "$rendered")"
sed -e "$(host_path /etc/hearth/gateway "${HEARTH_GATEWAY_CONFIG_DIR:-/etc/hearth/gateway}")" \
    -e "$(host_path /etc/hearth/messaging "${HEARTH_MESSAGING_CONFIG_DIR:-/etc/hearth/messaging}")" \
    -e "$(host_path /var/lib/hearth/workspace "${HEARTH_WORKSPACE_DIR:-/var/lib/hearth/workspace}")" \
    -e "$(host_path /var/lib/hearth/documents "${HEARTH_DOCUMENTS_DIR:-/var/lib/hearth/documents}")" \
    -e "$(host_path /run/hearth-inference "${HEARTH_INFERENCE_DIR:-/run/hearth-inference}")" \
    -e "$(host_path /run/hearth-whois "${HEARTH_WHOIS_DIR:-/run/hearth-whois}")" \
    -e "s#hostIP: 100.64.0.1,#hostIP: $mesh,#" \
    -e "s#runAsGroup: 996#runAsGroup: $group#" \
    -e "s#^  name: hearth\$#  name: $pod#" \
    -e "s#claimName: hearth-#claimName: $pod-#" \
    "$here/hearth-pod.yaml" >"$rendered.partial"
mv "$rendered.partial" "$rendered"
exec podman kube play "$rendered"
