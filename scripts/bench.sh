#!/usr/bin/env bash
# Runs the benchmarks against the cluster KUBECONFIG points at (the local one: e2e/cluster/up) with
# the operator deployed from this checkout; results go to bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?run eval \"\$(e2e/cluster/env)\" first}"
npx tsc -p tsconfig.bench.json
node .bench-dist/bench/investigation.bench.js
node .bench-dist/bench/containment.bench.js
node .bench-dist/bench/live.bench.js
node .bench-dist/bench/intake.bench.js
