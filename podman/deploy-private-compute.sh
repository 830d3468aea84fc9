#!/usr/bin/env bash
# Deploys private compute in the design's order, each stage printing what
# the next needs: (1) the router and the OHTTP gateway, (2) the relay,
# (3) the config server with the relay's URL and the router's address,
# (4) the compute node with the router's URL fixed in. Each stage runs the
# component's own deploy script; building is podman/build-images.sh (router
# compute ohttp-gateway relay auth), a separate command.
#
#   OHTTP_SEEDS_FILE=seeds.json HEARTH_POLICY_FILE=policy.json \
#   HEARTH_PUBLIC_RELAY_URL=http://100.64.0.1:3100/ podman/deploy-private-compute.sh
#
# The seeds JSON is checked before anything starts. Settings:
#   OHTTP_SEEDS_FILE        the seeds (a list of {key_id, seed_hex, active_from,
#                           active_until}); stored as the podman secret below
#   HEARTH_SEEDS_SECRET     [hearth-ohttp-seeds]
#   HEARTH_TOKEN_SECRET     [hearth-router-token] the router's node key (made if
#                           missing); the node's own credential, made from it,
#                           is the secret HEARTH_TOKEN_SECRET-NODE_ID
#   HEARTH_POLICY_FILE      the attestation policy the config server publishes
#   HEARTH_PUBLIC_RELAY_URL the relay as devices reach it (required)
#   HEARTH_POD              run every stage in this pod (one host; the pod
#                           publishes the relay's and config server's ports)
#   HEARTH_STAGES           [1 2 3 4] the stages to run on this host; the URLs of
#                           stages run elsewhere come from SERVER1_ROUTER_URL,
#                           SERVER1_GATEWAY_URL, SERVER4_RELAY_URL
#   HEARTH_PREFIX           [hearth] container names are PREFIX-router, ...
#   HEARTH_MODEL_NAME       [model]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${HEARTH_PREFIX:-hearth}"
stages=" ${HEARTH_STAGES:-1 2 3 4} "
seeds_secret="${HEARTH_SEEDS_SECRET:-hearth-ohttp-seeds}"
token_secret="${HEARTH_TOKEN_SECRET:-hearth-router-token}"
[[ -n "${HEARTH_PUBLIC_RELAY_URL:-}" ]] ||
    { echo "deploy-private-compute: set HEARTH_PUBLIC_RELAY_URL (the relay as devices reach it)" >&2; exit 2; }
[[ -f "${OHTTP_SEEDS_FILE:-}" ]] || { echo "deploy-private-compute: set OHTTP_SEEDS_FILE" >&2; exit 2; }
[[ -f "${HEARTH_POLICY_FILE:-}" ]] || { echo "deploy-private-compute: set HEARTH_POLICY_FILE" >&2; exit 2; }

# The seeds first: a bad list stops here, before anything runs.
podman secret inspect "$seeds_secret" >/dev/null 2>&1 || podman secret create "$seeds_secret" "$OHTTP_SEEDS_FILE" >/dev/null
if ! podman run --rm --network none --secret "$seeds_secret,type=env,target=OHTTP_SEEDS_JSON" \
    --entrypoint /usr/local/bin/hearth-ohttp-gateway localhost/hearth-ohttp-gateway:latest check-seeds; then
    echo "deploy-private-compute: the seeds in $OHTTP_SEEDS_FILE are not usable; nothing was started" >&2
    exit 2
fi
if ! podman secret inspect "$token_secret" >/dev/null 2>&1; then
    head -c 32 /dev/urandom | base64 | tr -d '=+/\n' | podman secret create "$token_secret" - >/dev/null
fi
pod=()
[[ -n "${HEARTH_POD:-}" ]] && pod=(HEARTH_POD="$HEARTH_POD")
# In a pod every component is on 127.0.0.1; across hosts, give each stage's
# URL (addresses, not names: the gateway's allow-list and the router's
# registry take addresses only).
here_url() {
    if [[ -n "${HEARTH_POD:-}" ]]; then
        echo "http://127.0.0.1:$1"
    else
        echo "deploy-private-compute: without HEARTH_POD, set $2 (http://ADDRESS:$1)" >&2
        exit 2
    fi
}

if [[ "$stages" == *" 1 "* ]]; then
    router_env=()
    if [[ -n "${HEARTH_POD:-}" ]]; then
        # In one pod the node is on the pod's loopback, and every client
        # request comes through the OHTTP gateway beside the router.
        router_env=(HEARTH_NODE_NETWORKS=127.0.0.0/8 HEARTH_FORWARDERS=127.0.0.1)
    fi
    env "${pod[@]}" "${router_env[@]}" HEARTH_NAME="$prefix-router" HEARTH_TOKEN_SECRET="$token_secret" \
        "$here/deploy-router.sh" >/dev/null
    SERVER1_ROUTER_URL="${SERVER1_ROUTER_URL:-$(here_url 3600 SERVER1_ROUTER_URL)}"
    env "${pod[@]}" HEARTH_NAME="$prefix-ohttp-gateway" HEARTH_SEEDS_SECRET="$seeds_secret" \
        "$here/deploy-oblivious.sh" ohttp-gateway --allow "$SERVER1_ROUTER_URL/v1/" >/dev/null
    SERVER1_GATEWAY_URL="${SERVER1_GATEWAY_URL:-$(here_url 3200 SERVER1_GATEWAY_URL)/gateway}"
    echo "SERVER1_ROUTER_URL=$SERVER1_ROUTER_URL"
    echo "SERVER1_GATEWAY_URL=$SERVER1_GATEWAY_URL"
fi
if [[ "$stages" == *" 2 "* ]]; then
    : "${SERVER1_GATEWAY_URL:?stage 2 needs SERVER1_GATEWAY_URL}"
    env "${pod[@]}" HEARTH_NAME="$prefix-relay" "$here/deploy-oblivious.sh" relay --gateway "$SERVER1_GATEWAY_URL" >/dev/null
    SERVER4_RELAY_URL="$HEARTH_PUBLIC_RELAY_URL"
    echo "SERVER4_RELAY_URL=$SERVER4_RELAY_URL"
fi
if [[ "$stages" == *" 3 "* ]]; then
    : "${SERVER4_RELAY_URL:?stage 3 needs SERVER4_RELAY_URL}" "${SERVER1_ROUTER_URL:?}" "${SERVER1_GATEWAY_URL:?}"
    env "${pod[@]}" HEARTH_NAME="$prefix-auth" HEARTH_SEEDS_SECRET="$seeds_secret" HEARTH_POLICY_FILE="$HEARTH_POLICY_FILE" \
        "$here/deploy-oblivious.sh" auth --relay-url "$SERVER4_RELAY_URL" \
        --gateway-url "$SERVER1_GATEWAY_URL" --router-url "$SERVER1_ROUTER_URL" >/dev/null
    echo "SERVER3_CONFIG_URL=${SERVER3_CONFIG_URL:-$(here_url 8080 SERVER3_CONFIG_URL)}"
fi
if [[ "$stages" == *" 4 "* ]]; then
    : "${SERVER1_ROUTER_URL:?stage 4 needs SERVER1_ROUTER_URL}"
    node="$prefix-compute-1"
    credential_secret="$token_secret-$node"
    if ! podman secret inspect "$credential_secret" >/dev/null 2>&1; then
        # The node's own credential, made from the router's key by the
        # router's image (the key never leaves podman's secrets).
        podman run --rm --network none \
            --secret "$token_secret,type=mount,target=/run/secrets/node.token,uid=65532,gid=65532,mode=0400" \
            localhost/hearth-router:latest node-token "$node" --node-token-file /run/secrets/node.token |
            podman secret create "$credential_secret" - >/dev/null
    fi
    env "${pod[@]}" HEARTH_NAME="$prefix-compute" HEARTH_NODE_ID="$node" HEARTH_TOKEN_SECRET="$credential_secret" \
        HEARTH_MODEL_NAME="${HEARTH_MODEL_NAME:-model}" HEARTH_ROUTER_URL="$SERVER1_ROUTER_URL" \
        HEARTH_ADVERTISE="${HEARTH_ADVERTISE:-http://127.0.0.1:7000}" "$here/deploy-compute.sh" >/dev/null
    echo "compute node $node joins $SERVER1_ROUTER_URL"
fi
