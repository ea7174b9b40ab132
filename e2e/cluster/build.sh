#!/usr/bin/env bash
# Builds the cluster's Go binaries into a cache keyed by the pinned versions (nothing lands in the repo):
#   k8s     every Kubernetes component, multi-call (dispatches on argv[0])
#   etcd    etcd at the version Kubernetes itself pins
#   kube-router  the NetworkPolicy enforcer, from its own module in kube-router/ (firewall-only)
#   pause   the pod sandbox process
#   helm    Helm, from its own module in helm/ (the chart's lint and install e2e)
#   kstatus cli-utils' kstatus status library behind kstatus/main.go, its own module (the e2e's Flux-style status check)
# A warm cache makes this a no-op; a cold one compiles Kubernetes (about 20-30 minutes on 2 cores).
. "$(dirname "$0")/lib.sh"

command -v go >/dev/null || die "go is not installed: install Go >= 1.24 (the machine image ships it)"

export GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="$CACHE_ROOT/gomod" GOCACHE="$CACHE_ROOT/go-build"
# go.sum is committed: with the checksum database unreachable here, it is what pins every module.

version_ldflags() {
  local v=$K8S_VERSION minor
  minor=$(echo "$v" | cut -d. -f2)
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' "$p" "$v" "$p" "$p" "$minor" "$p"
  done
}

# build_one NAME PACKAGE LDFLAGS [MODULE_DIR]
build_one() {
  local name=$1 pkg=$2 ldflags=$3 module=${4:-$CLUSTER_DIR/go}
  [ -x "$BIN_CACHE/$name" ] && return 0
  say "building $name ($pkg) into $BIN_CACHE"
  local start=$SECONDS
  (cd "$module" && go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN_CACHE/$name.tmp" "$pkg") ||
    die "building $name failed (see the compiler output above); fix it and run up again"
  mv "$BIN_CACHE/$name.tmp" "$BIN_CACHE/$name"
  say "built $name in $((SECONDS - start))s"
}

mkdir -p "$BIN_CACHE"
build_one k8s ./cmd/k8s "$(version_ldflags)"
build_one etcd ./cmd/etcd ""
build_one pause ./cmd/pause ""
pinned=$(awk '$1 == "require" && $2 == "github.com/cloudnativelabs/kube-router/v2" {print $3}' "$CLUSTER_DIR/kube-router/go.mod")
[ "$pinned" = "$KUBE_ROUTER_VERSION" ] || die "kube-router/go.mod requires kube-router $pinned but versions.env says $KUBE_ROUTER_VERSION: in e2e/cluster/kube-router run 'go get github.com/cloudnativelabs/kube-router/v2@$KUBE_ROUTER_VERSION && go mod tidy'"
build_one "$KUBE_ROUTER_BIN" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
  "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" "$CLUSTER_DIR/kube-router"
pinned=$(awk '{for (i = 1; i < NF; i++) if ($i == "helm.sh/helm/v4") print $(i + 1)}' "$CLUSTER_DIR/helm/go.mod")
[ "$pinned" = "$HELM_VERSION" ] || die "helm/go.mod requires helm $pinned but versions.env says $HELM_VERSION: in e2e/cluster/helm run 'go get helm.sh/helm/v4@$HELM_VERSION && go mod tidy'"
build_one "$HELM_BIN" helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "$CLUSTER_DIR/helm"
pinned=$(awk '{for (i = 1; i < NF; i++) if ($i == "sigs.k8s.io/cli-utils") print $(i + 1)}' "$CLUSTER_DIR/kstatus/go.mod")
[ "$pinned" = "$CLI_UTILS_VERSION" ] || die "kstatus/go.mod requires cli-utils $pinned but versions.env says $CLI_UTILS_VERSION: in e2e/cluster/kstatus run 'go get sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION && go mod tidy'"
build_one "$KSTATUS_BIN" . "" "$CLUSTER_DIR/kstatus"
