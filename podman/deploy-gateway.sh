#!/usr/bin/env bash
# Runs the gateway container from an image podman/build-images.sh built. Deploys
# only: it never builds. Every setting comes from the environment:
#
#   HEARTH_IMAGE            localhost/hearth-gateway:latest
#   HEARTH_NAME             hearth-gateway (the container)
#   HEARTH_CONFIG_DIR       /etc/hearth/gateway      holds gateway.json5; mounted read-only at /etc/hearth
#   HEARTH_WORKSPACE_DIR    /var/lib/hearth/workspace  persona files; read-only at /workspace
#   HEARTH_DOCUMENTS_DIR    /var/lib/hearth/documents  the household's documents (may be empty); read-only at /documents
#   HEARTH_INFERENCE_DIR    /run/hearth-inference    llama-server's socket (0660, group below); read-only at /run/hearth-inference
#   HEARTH_INFERENCE_GID    gid of the group `hearth-inference` (may connect to the socket)
#   HEARTH_DATA_VOLUME      hearth-gateway-data      the one writable place, at /var/lib/hearth-gateway
#   HEARTH_PUBLISH          127.0.0.1:18789          loopback or the mesh address, never 0.0.0.0
#   HEARTH_NETWORK          hearth                   a bridge of its own (created if missing)
#   HEARTH_MEMORY, HEARTH_PIDS   1g, 256
#   HEARTH_TOKEN_SECRET     hearth-gateway-token     a podman secret with the bearer token
#                           (podman secret create hearth-gateway-token FILE); given to the
#                           gateway as $HEARTH_GATEWAY_TOKEN, never on a command line
#   HEARTH_PODMAN_ARGS      extra `podman run` arguments (the tests mount a probe with it)
#
# The model is reached through the socket, not the network: the container
# needs no route to the host.
set -euo pipefail
image="${HEARTH_IMAGE:-localhost/hearth-gateway:latest}"
name="${HEARTH_NAME:-hearth-gateway}"
config="${HEARTH_CONFIG_DIR:-/etc/hearth/gateway}"
workspace="${HEARTH_WORKSPACE_DIR:-/var/lib/hearth/workspace}"
documents="${HEARTH_DOCUMENTS_DIR:-/var/lib/hearth/documents}"
inference="${HEARTH_INFERENCE_DIR:-/run/hearth-inference}"
gid="${HEARTH_INFERENCE_GID:-$( (getent group hearth-inference || true) | cut -d: -f3)}"
volume="${HEARTH_DATA_VOLUME:-hearth-gateway-data}"
publish="${HEARTH_PUBLISH:-127.0.0.1:18789}"
network="${HEARTH_NETWORK:-hearth}"
secret="${HEARTH_TOKEN_SECRET:-hearth-gateway-token}"

case "$publish" in
    0.0.0.0:* | \[::\]:* | :*) echo "deploy-gateway: refusing to publish on all addresses ($publish)" >&2; exit 2 ;;
esac
[[ -n "$gid" ]] || { echo "deploy-gateway: no group hearth-inference; set HEARTH_INFERENCE_GID" >&2; exit 2; }
[[ -f "$config/gateway.json5" ]] || { echo "deploy-gateway: $config/gateway.json5 is missing" >&2; exit 2; }
[[ -d "$documents" ]] || { echo "deploy-gateway: $documents is missing (the household's documents; it may be empty)" >&2; exit 2; }
podman image exists "$image" || { echo "deploy-gateway: no image $image: run podman/build-images.sh gateway first" >&2; exit 2; }
podman secret inspect "$secret" >/dev/null 2>&1 ||
    { echo "deploy-gateway: no podman secret $secret: podman secret create $secret TOKEN_FILE" >&2; exit 2; }
podman network exists "$network" || podman network create "$network" >/dev/null
podman volume exists "$volume" || podman volume create "$volume" >/dev/null

# HEARTH_DEPLOY=create only creates the container (podman/generate-units.sh
# turns it into a unit with `podman generate systemd --new`).
if [[ "${HEARTH_DEPLOY:-run}" == create ]]; then verb=(create); else verb=(run --detach); fi
# shellcheck disable=SC2086 # HEARTH_PODMAN_ARGS is a list of words
exec podman "${verb[@]}" --replace --name "$name" \
    --cap-drop=ALL --security-opt=no-new-privileges \
    --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,mode=1777,size=64m,noexec,nosuid,nodev \
    --user 65532:65532 --group-add "$gid" \
    --memory "${HEARTH_MEMORY:-1g}" --pids-limit "${HEARTH_PIDS:-256}" \
    --volume "$config:/etc/hearth:ro" \
    --volume "$workspace:/workspace:ro" \
    --volume "$documents:/documents:ro" \
    --volume "$inference:/run/hearth-inference:ro" \
    --volume "$volume:/var/lib/hearth-gateway" \
    --secret "$secret,type=env,target=HEARTH_GATEWAY_TOKEN" \
    --network "$network" --publish "$publish:18789" \
    --stop-timeout 15 \
    ${HEARTH_PODMAN_ARGS:-} \
    "$image"
