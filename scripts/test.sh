#!/usr/bin/env bash
# The whole test suite, from a fresh machine of this kind: installs what it needs (npm packages,
# Debian packages and the Go-built cluster binaries, through e2e/cluster/up), runs the unit tests,
# brings the local cluster up, runs the e2e tests against it, and takes the cluster down again.
# KEEP_CLUSTER=1 leaves the cluster running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (the local cluster starts containerd and the kubelet)" >&2; exit 1; }
npm install --no-audit --no-fund --loglevel=error
npm run --silent build
npm run --silent typecheck
npm run --silent test:unit

cleanup() { [ "${KEEP_CLUSTER:-0}" = 1 ] || bash e2e/cluster/down || true; }
trap cleanup EXIT
bash e2e/cluster/up
eval "$(bash e2e/cluster/env)"
npm run --silent test:e2e
