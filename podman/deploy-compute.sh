#!/usr/bin/env bash
# Runs the compute image (`podman/build-images.sh compute`) as an ordinary
# container, with DEV EVIDENCE: no hardware stands behind its attestation,
# and the default client policy refuses it. For labs, tests and trying the
# protocol. On AWS the same image becomes an enclave: podman/build-enclave.sh.
# Deploys only: it never builds. Settings from the environment:
#
#   HEARTH_ROUTER_URL    the router, as the node reaches it (http://IP:PORT; required)
#   HEARTH_ADVERTISE     the node, as the router reaches it (http://IP:7000; required)
#   HEARTH_NODE_ID       [hearth-compute-1]
#   HEARTH_IMAGE         [localhost/hearth-compute:latest]
#   HEARTH_NAME          [the node id] the container
#   HEARTH_TOKEN_SECRET  [hearth-router-token] this node's credential (a podman secret
#                        made from `hearth-router node-token NODE_ID`: it speaks for
#                        this node id only)
#   HEARTH_POD           a pod to join, else HEARTH_NETWORK [hearth-compute]
#   HEARTH_MODEL_NAME    [model] the name clients ask for
#   HEARTH_CAPACITY      [4] replies at once (llama-server slots)
#   HEARTH_MEMORY, HEARTH_PIDS  [4g, 256]
#   HEARTH_PODMAN_ARGS   extra `podman run` arguments
set -euo pipefail
image="${HEARTH_IMAGE:-localhost/hearth-compute:latest}"
node="${HEARTH_NODE_ID:-hearth-compute-1}"
name="${HEARTH_NAME:-$node}"
secret="${HEARTH_TOKEN_SECRET:-hearth-router-token}"
network="${HEARTH_NETWORK:-hearth-compute}"
router="${HEARTH_ROUTER_URL:-}"
advertise="${HEARTH_ADVERTISE:-}"

[[ "$router" =~ ^http://[0-9.]+:[0-9]+$ ]] ||
    { echo "deploy-compute: set HEARTH_ROUTER_URL=http://IP:PORT (the router as the node reaches it)" >&2; exit 2; }
[[ "$advertise" =~ ^http://[0-9.]+:[0-9]+$ ]] ||
    { echo "deploy-compute: set HEARTH_ADVERTISE=http://IP:PORT (this node as the router reaches it)" >&2; exit 2; }
podman image exists "$image" || { echo "deploy-compute: no image $image: run podman/build-images.sh compute first" >&2; exit 2; }
podman secret inspect "$secret" >/dev/null 2>&1 ||
    { echo "deploy-compute: no podman secret $secret: hearth-router node-token $node --output FILE; podman secret create $secret FILE" >&2; exit 2; }
if [[ -n "${HEARTH_POD:-}" ]]; then
    placement=(--pod "$HEARTH_POD")
else
    podman network exists "$network" || podman network create "$network" >/dev/null
    placement=(--network "$network")
fi
listen="0.0.0.0:${advertise##*:}"
# shellcheck disable=SC2086 # HEARTH_PODMAN_ARGS is a list of words
exec podman run --detach --replace --name "$name" "${placement[@]}" \
    --cap-drop=ALL --security-opt=no-new-privileges \
    --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,mode=1777,size=16m,noexec,nosuid,nodev \
    --user 65532:65532 \
    --memory "${HEARTH_MEMORY:-4g}" --pids-limit "${HEARTH_PIDS:-256}" \
    --tmpfs /run/secrets:rw,mode=0755,size=64k,noexec,nosuid,nodev \
    --secret "$secret,type=mount,target=/run/secrets/router.token,uid=65532,gid=65532,mode=0400" \
    --stop-timeout 15 \
    ${HEARTH_PODMAN_ARGS:-} \
    "$image" \
    --node-id "$node" --listen "$listen" --advertise "$advertise" \
    --router "$router" --router-token-file /run/secrets/router.token \
    --model "${HEARTH_MODEL_NAME:-model}" --evidence dev --capacity "${HEARTH_CAPACITY:-4}"
