#!/usr/bin/env bash
# The demo: a local cluster, the operator, a suspicious pod investigated, the case's report printed.
# Leaves the cluster running afterwards (e2e/cluster/down removes it).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/demo.sh: run as root (the local cluster starts containerd and the kubelet)" >&2; exit 1; }

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
step "installing dependencies and building casefile"
npm install --no-audit --no-fund --loglevel=error
npm run --silent build
step "bringing up the local Kubernetes cluster (the first run compiles Kubernetes, etcd, kube-router and Helm: allow ~35 minutes on 2 cores)"
bash e2e/cluster/up
eval "$(bash e2e/cluster/env)"
step "deploying the casefile operator"
bash scripts/deploy.sh

step "starting the demo workload shop/web (2 replicas; one will be our suspect)"
sed "s#BUSYBOX_IMAGE#$CASEFILE_BUSYBOX_IMAGE#" examples/demo-workload.yaml | kubectl apply -f - >/dev/null
kubectl -n shop rollout status deployment/web --timeout=120s >/dev/null
suspect=$(kubectl -n shop get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
# The intruder's second visit is the restarted container: open the case once it runs, not before
# (rollout status can report the first, crashing container as available).
kubectl -n shop wait "pod/$suspect" --timeout=120s \
  --for=jsonpath='{.status.containerStatuses[0].restartCount}'=1 >/dev/null
kubectl -n shop wait "pod/$suspect" --for=condition=Ready --timeout=60s >/dev/null
kubectl -n shop get pods -o wide

step "an alert names $suspect: opening an Investigation"
kubectl apply -f - <<YAML
apiVersion: casefile.dev/v1alpha1
kind: Investigation
metadata:
  name: web-shell-0001
  namespace: shop
spec:
  target:
    pod: $suspect
  alert:
    source: manual
    rule: Drop and execute new binary in container
    priority: Critical
    time: "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  containment:
    network: { isolate: true, verify: true }
  evidence:
    live: { enabled: true }
YAML
kubectl -n shop wait investigation/web-shell-0001 --for=condition=Ready --timeout=180s >/dev/null ||
  { kubectl -n shop describe investigation web-shell-0001; exit 1; }
kubectl -n shop get investigation web-shell-0001 -o wide

step "the case from kubectl: kubectl casefile status (the plugin is on the PATH e2e/cluster/env prints)"
kubectl casefile -n shop status web-shell-0001

step "the case file's report (report.md on the evidence volume)"
kubectl -n casefile-system exec deploy/casefile-operator -- /usr/bin/node /app/dist/cli/main.js show shop/web-shell-0001
case_dir=$(kubectl -n shop get investigation web-shell-0001 -o jsonpath='{.status.evidence.path}')
step "verifying the case file (custody chain and MANIFEST.sha256)"
kubectl -n casefile-system exec deploy/casefile-operator -- /usr/bin/node /app/dist/cli/main.js verify "/evidence/$case_dir"
kubectl -n shop get pods -L "casefile.dev/incident-$(kubectl -n shop get investigation web-shell-0001 -o jsonpath='{.metadata.uid}' | tr -d - | cut -c1-8)"
printf '\nThe suspect is isolated; its sibling replica is not. Lift containment with:\n  kubectl casefile -n shop release web-shell-0001 --wait\n'
printf '\nThe cluster is still running: eval "$(e2e/cluster/env)" to use kubectl; e2e/cluster/down removes it.\n'
