#!/usr/bin/env bash
# The same contract as `up`, on a machine with Docker and kind (>= v0.24, whose default CNI enforces
# NetworkPolicy through kube-network-policies). It cannot run on this project's build machines (no
# Docker there); the test suites only need KUBECONFIG and the image names, so they run unchanged:
#   e2e/cluster/kind.sh up   &&   eval "$(e2e/cluster/kind.sh env)"   &&   npm run test:e2e
. "$(dirname "$0")/lib.sh"
CLUSTER=casefile
STATE=${CASEFILE_KIND_STATE:-$HOME/.cache/casefile/kind}
IMAGES_ENV=$STATE/images.env
case "${1:-up}" in
  up)
    command -v kind >/dev/null && command -v docker >/dev/null || die "kind.sh needs docker and kind on PATH"
    mkdir -p "$STATE"
    kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --kubeconfig "$STATE/kubeconfig" --wait 120s
    . "$CLUSTER_DIR/images.sh"
    import_image() { kind load image-archive "$2" --name "$CLUSTER"; }
    SKIP_PAUSE_IMAGE=1 build_all_images
    ;;
  env)
    echo "export KUBECONFIG=$STATE/kubeconfig"
    sed 's/^/export /' "$IMAGES_ENV"
    ;;
  down) kind delete cluster --name "$CLUSTER" ;;
  *) die "usage: kind.sh up|env|down" ;;
esac
