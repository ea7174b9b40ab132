#!/usr/bin/env bash
# Builds the cluster's Go binaries into a cache keyed by the pinned versions (nothing lands in the repo):
#   k8s     every Kubernetes component, multi-call (dispatches on argv[0])
#   etcd    etcd at the version Kubernetes itself pins
#   netpol  the test cluster's NetworkPolicy enforcer (see go/cmd/netpol)
#   pause   the pod sandbox process
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

build_one() {
  local name=$1 pkg=$2 ldflags=$3
  [ -x "$BIN_CACHE/$name" ] && return 0
  say "building $name ($pkg) into $BIN_CACHE"
  local start=$SECONDS
  (cd "$CLUSTER_DIR/go" && go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN_CACHE/$name.tmp" "$pkg") ||
    die "building $name failed (see the compiler output above); fix it and run up again"
  mv "$BIN_CACHE/$name.tmp" "$BIN_CACHE/$name"
  say "built $name in $((SECONDS - start))s"
}

mkdir -p "$BIN_CACHE"
build_one k8s ./cmd/k8s "$(version_ldflags)"
build_one etcd ./cmd/etcd ""
build_one pause ./cmd/pause ""
# netpol is small and is the project's own code: rebuild it when its source changes.
netpol_key=$(cat "$CLUSTER_DIR"/go/cmd/netpol/*.go | sha256sum | cut -c1-12)
if [ ! -x "$BIN_CACHE/netpol-$netpol_key" ]; then
  rm -f "$BIN_CACHE"/netpol-*
  build_one "netpol-$netpol_key" ./cmd/netpol ""
fi
ln -sfn "netpol-$netpol_key" "$BIN_CACHE/netpol"
