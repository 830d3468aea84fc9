#!/usr/bin/env bash
# Runs one component of private compute's oblivious layer from the image
# podman/build-images.sh built. Deploys only: it never builds.
#
#   podman/deploy-oblivious.sh ohttp-gateway --allow http://ROUTER:3600/v1/
#   podman/deploy-oblivious.sh relay --gateway http://GATEWAY:3200/gateway
#   podman/deploy-oblivious.sh auth --relay-url URL --gateway-url URL --router-url URL
#
# The words after the component are passed to its `serve` (see --help of
# hearth-ohttp-gateway, hearth-ohttp-relay, hearth-pcc-auth); --listen is
# set here. Settings from the environment (defaults in brackets):
#   HEARTH_IMAGE          [localhost/hearth-COMPONENT:latest]
#   HEARTH_NAME           [hearth-COMPONENT] the container
#   HEARTH_SEEDS_SECRET   [hearth-ohttp-seeds] a podman secret with the seeds JSON,
#                         given to ohttp-gateway and auth as $OHTTP_SEEDS_JSON
#   HEARTH_POLICY_FILE    auth: the attestation policy, mounted read-only
#   HEARTH_POD            a pod to join (then the pod publishes ports), else:
#   HEARTH_NETWORK        [hearth-compute] a bridge of its own (created if missing)
#   HEARTH_PUBLISH        [127.0.0.1:PORT] loopback or a mesh address, never 0.0.0.0
#   HEARTH_MEMORY, HEARTH_PIDS  [256m, 128]
#   HEARTH_PODMAN_ARGS    extra `podman run` arguments
set -euo pipefail
component="${1:?usage: podman/deploy-oblivious.sh ohttp-gateway|relay|auth [serve options]}"
shift
case "$component" in
    ohttp-gateway) port=3200 ;;
    relay) port=3100 ;;
    auth) port=8080 ;;
    *) echo "deploy-oblivious: unknown component $component (ohttp-gateway, relay, auth)" >&2; exit 2 ;;
esac
image="${HEARTH_IMAGE:-localhost/hearth-$component:latest}"
name="${HEARTH_NAME:-hearth-$component}"
secret="${HEARTH_SEEDS_SECRET:-hearth-ohttp-seeds}"
publish="${HEARTH_PUBLISH:-127.0.0.1:$port}"
network="${HEARTH_NETWORK:-hearth-compute}"

case "$publish" in
    0.0.0.0:* | \[::\]:* | :*) echo "deploy-oblivious: refusing to publish on all addresses ($publish)" >&2; exit 2 ;;
esac
podman image exists "$image" ||
    { echo "deploy-oblivious: no image $image: run podman/build-images.sh $component first" >&2; exit 2; }
extra=()
if [[ "$component" != relay ]]; then
    podman secret inspect "$secret" >/dev/null 2>&1 ||
        { echo "deploy-oblivious: no podman secret $secret: podman secret create $secret SEEDS_JSON_FILE" >&2; exit 2; }
    extra+=(--secret "$secret,type=env,target=OHTTP_SEEDS_JSON")
fi
if [[ "$component" == auth ]]; then
    [[ -f "${HEARTH_POLICY_FILE:-}" ]] ||
        { echo "deploy-oblivious: set HEARTH_POLICY_FILE to the attestation policy clients apply" >&2; exit 2; }
    extra+=(--volume "$HEARTH_POLICY_FILE:/etc/hearth/policy.json:ro")
    set -- "$@" --policy /etc/hearth/policy.json
fi
if [[ -n "${HEARTH_POD:-}" ]]; then
    placement=(--pod "$HEARTH_POD")
else
    podman network exists "$network" || podman network create "$network" >/dev/null
    placement=(--network "$network" --publish "$publish:$port")
fi
# shellcheck disable=SC2086 # HEARTH_PODMAN_ARGS is a list of words
exec podman run --detach --replace --name "$name" "${placement[@]}" "${extra[@]}" \
    --cap-drop=ALL --security-opt=no-new-privileges \
    --read-only --read-only-tmpfs=false \
    --user 65532:65532 \
    --memory "${HEARTH_MEMORY:-256m}" --pids-limit "${HEARTH_PIDS:-128}" \
    --stop-timeout 15 \
    ${HEARTH_PODMAN_ARGS:-} \
    "$image" --listen "0.0.0.0:$port" "$@"
