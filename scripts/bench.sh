#!/usr/bin/env bash
# Runs the benchmarks against the cluster KUBECONFIG points at (the local one: e2e/cluster/up) with the
# operator deployed from this checkout; results are appended to bench/results.md. Each benchmark
# measures the physical limit of the same work in the same run, interleaved with casefile's runs.
#   npm run bench                 the default set (within 15 minutes on the reference machine)
#   npm run bench -- contain      one (or more) by name: contain verify intake scale investigation live
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KUBECONFIG:?run eval \"\$(e2e/cluster/env)\" first}"
all=(contain verify intake scale)
names=("${@:-${all[@]}}")
[ $# -gt 0 ] || names=("${all[@]}")
for name in "${names[@]}"; do
  [ -f "bench/$name.bench.ts" ] || { echo "scripts/bench.sh: no benchmark '$name' (have: $(cd bench && ls *.bench.ts | sed 's/.bench.ts//' | tr '\n' ' '))" >&2; exit 2; }
done
npx tsc -p tsconfig.bench.json
for name in "${names[@]}"; do
  echo "== bench $name ($(date -u +%H:%M:%S))"
  node ".bench-dist/bench/$name.bench.js"
done
