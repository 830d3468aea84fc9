#!/usr/bin/env bash
# The deploy-time step of private compute on AWS Nitro Enclaves: turns the
# compute image (`podman/build-images.sh compute`) into an enclave image file
# (EIF) with this deployment's settings fixed in, and writes the client
# policy that pins the EIF's measurements. Runs on an enclave-enabled EC2
# instance with nitro-cli (aws-nitro-enclaves-cli); it cannot run elsewhere,
# and nothing here imitates it. docs/deploy.md, "Private compute on AWS
# Nitro Enclaves", has the whole path.
#
#   podman/build-enclave.sh OUTPUT_DIR
#
# Settings from the environment:
#   HEARTH_NODE_ID        [hearth-enclave-1]
#   HEARTH_MODEL_NAME     [model] the name clients ask for
#   HEARTH_ROUTER_URL     the router's URL (required; the enclave reaches it
#                         through the parent's proxy on vsock port
#                         HEARTH_ROUTER_VSOCK_PORT [8001])
#   HEARTH_ADVERTISE      the node as the router reaches it: the parent's
#                         proxy into the enclave (required)
#   HEARTH_NODE_VSOCK_PORT [7000] where the node listens inside
#   HEARTH_ROUTER_TOKEN   a file with this node's credential, from
#                         `hearth-router node-token NODE_ID` (required; it
#                         becomes part of the image, and so of PCR2)
#   HEARTH_CAPACITY       [4]
#   HEARTH_IMAGE          [localhost/hearth-compute:latest]
#
# Writes OUTPUT_DIR/hearth-compute.eif, OUTPUT_DIR/measurements.txt (what
# nitro-cli printed) and OUTPUT_DIR/policy.json (for the gateway's
# `attestationPolicy` and `hearth-pcc --policy`). Review the policy, then
# hand it to every client.
#
# The enclave reaches the router and is reached only over vsock. On the
# parent, run two proxies (docs/deploy.md):
#   hearth-enclave proxy --listen 0.0.0.0:7000 --to vsock:ENCLAVE_CID:7000 --proxy-header
#   hearth-enclave proxy --listen vsock:8001 --to tcp:ROUTER_ADDRESS:3600
set -euo pipefail
out="${1:?usage: podman/build-enclave.sh OUTPUT_DIR}"
image="${HEARTH_IMAGE:-localhost/hearth-compute:latest}"
node="${HEARTH_NODE_ID:-hearth-enclave-1}"
router="${HEARTH_ROUTER_URL:?set HEARTH_ROUTER_URL}"
advertise="${HEARTH_ADVERTISE:?set HEARTH_ADVERTISE}"
token="${HEARTH_ROUTER_TOKEN:?set HEARTH_ROUTER_TOKEN to the router token file}"
command -v nitro-cli >/dev/null ||
    { echo "build-enclave: nitro-cli not found: this step runs on an enclave-enabled EC2 instance (docs/deploy.md)" >&2; exit 2; }
command -v hearth-pcc >/dev/null || { echo "build-enclave: hearth-pcc not found on PATH" >&2; exit 2; }
podman image exists "$image" || { echo "build-enclave: no image $image: run podman/build-images.sh compute" >&2; exit 2; }
mkdir -p "$out"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
install -m 0400 "$token" "$context/router.token"
mkdir -m 0700 "$context/tmp"
# An enclave's root is in memory and has no tmpfs: /tmp is made here, for
# the model's private socket directory.
cat >"$context/Containerfile" <<CONTAINERFILE
FROM $image
COPY --chown=65532:65532 --chmod=0400 router.token /etc/hearth/router.token
COPY --chown=65532:65532 tmp/ /tmp/
CMD ["--node-id", "$node", "--model", "${HEARTH_MODEL_NAME:-model}", "--listen", "vsock:${HEARTH_NODE_VSOCK_PORT:-7000}", "--advertise", "$advertise", "--router", "$router", "--router-via", "vsock:3:${HEARTH_ROUTER_VSOCK_PORT:-8001}", "--router-token-file", "/etc/hearth/router.token", "--evidence", "nitro", "--capacity", "${HEARTH_CAPACITY:-4}"]
CONTAINERFILE
tag="localhost/hearth-compute-enclave:$node"
podman build --quiet --tag "$tag" "$context" >/dev/null
# nitro-cli reads images from the docker daemon's store.
podman save "$tag" | docker load >/dev/null
nitro-cli build-enclave --docker-uri "$tag" --output-file "$out/hearth-compute.eif" | tee "$out/measurements.txt"
hearth-pcc policy "$out/measurements.txt" --name "hearth-compute $node" >"$out/policy.json"
echo "build-enclave: $out/policy.json pins this EIF; run it with nitro-cli run-enclave --eif-path $out/hearth-compute.eif"
