#!/usr/bin/env bash
# Runs the private-compute router from the image podman/build-images.sh
# built (`router`). Deploys only: it never builds. Settings from the
# environment (defaults in brackets):
#
#   HEARTH_IMAGE         [localhost/hearth-router:latest]
#   HEARTH_NAME          [hearth-router] the container
#   HEARTH_TOKEN_SECRET  [hearth-router-token] a podman secret holding the
#                        router's node key (podman secret create NAME FILE);
#                        each node gets its own credential made from it with
#                        `hearth-router node-token NODE --node-token-file FILE`
#   HEARTH_NODE_NETWORKS [the router's default: private networks] where
#                        compute nodes may be reached (comma-separated CIDRs;
#                        127.0.0.0/8 when they share the router's pod)
#   HEARTH_FORWARDERS    OHTTP gateways' addresses (comma-separated), not
#                        held to one client's rate
#   HEARTH_POD           a pod to join (then the pod publishes ports), else:
#   HEARTH_NETWORK       [hearth-compute] a bridge of its own (created if missing)
#   HEARTH_PUBLISH       [127.0.0.1:3600] loopback or a mesh address, never 0.0.0.0
#   HEARTH_MEMORY, HEARTH_PIDS  [256m, 128]
#   HEARTH_PODMAN_ARGS   extra `podman run` arguments
#
# The router holds no key that opens a request: it sees sealed bytes, which
# node they go to, and their sizes and timing (docs/private-compute.md).
set -euo pipefail
image="${HEARTH_IMAGE:-localhost/hearth-router:latest}"
name="${HEARTH_NAME:-hearth-router}"
secret="${HEARTH_TOKEN_SECRET:-hearth-router-token}"
publish="${HEARTH_PUBLISH:-127.0.0.1:3600}"
network="${HEARTH_NETWORK:-hearth-compute}"

case "$publish" in
    0.0.0.0:* | \[::\]:* | :*) echo "deploy-router: refusing to publish on all addresses ($publish)" >&2; exit 2 ;;
esac
podman image exists "$image" || { echo "deploy-router: no image $image: run podman/build-images.sh router first" >&2; exit 2; }
podman secret inspect "$secret" >/dev/null 2>&1 ||
    { echo "deploy-router: no podman secret $secret: podman secret create $secret TOKEN_FILE" >&2; exit 2; }
if [[ -n "${HEARTH_POD:-}" ]]; then
    placement=(--pod "$HEARTH_POD")
else
    podman network exists "$network" || podman network create "$network" >/dev/null
    placement=(--network "$network" --publish "$publish:3600")
fi
arguments=(serve --listen 0.0.0.0:3600 --node-token-file /run/secrets/node.token)
[[ -n "${HEARTH_NODE_NETWORKS:-}" ]] && arguments+=(--node-networks "$HEARTH_NODE_NETWORKS")
IFS=, read -r -a forwarders <<<"${HEARTH_FORWARDERS:-}"
for forwarder in "${forwarders[@]}"; do
    arguments+=(--forwarder "$forwarder")
done
# shellcheck disable=SC2086 # HEARTH_PODMAN_ARGS is a list of words
exec podman run --detach --replace --name "$name" "${placement[@]}" \
    --cap-drop=ALL --security-opt=no-new-privileges \
    --read-only --read-only-tmpfs=false \
    --user 65532:65532 \
    --memory "${HEARTH_MEMORY:-256m}" --pids-limit "${HEARTH_PIDS:-128}" \
    --tmpfs /run/secrets:rw,mode=0755,size=64k,noexec,nosuid,nodev \
    --secret "$secret,type=mount,target=/run/secrets/node.token,uid=65532,gid=65532,mode=0400" \
    --stop-timeout 15 \
    ${HEARTH_PODMAN_ARGS:-} \
    "$image" "${arguments[@]}"
