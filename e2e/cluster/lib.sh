# Shared settings and helpers for e2e/cluster/{up,down,env,status}. Sourced, not run.
# shellcheck shell=bash
set -euo pipefail

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$CLUSTER_DIR/../.." && pwd)
# shellcheck source=versions.env
. "$CLUSTER_DIR/versions.env"

# Everything the running cluster owns lives under STATE (removed by down); everything that is
# expensive to rebuild lives under CACHE, keyed by the pinned versions (kept across down/up).
STATE=${CASEFILE_CLUSTER_STATE:-/var/lib/casefile-cluster}
RUN_DIR=/run/casefile-cluster
CACHE_ROOT=${CASEFILE_CACHE:-$HOME/.cache/casefile}
# Keyed by content only (never by the checkout's path), so every clone shares the cache.
VERSIONS_KEY=$({ echo "$K8S_VERSION $ETCD_VERSION"; cat "$CLUSTER_DIR/go/go.sum"; } | sha256sum | cut -c1-12)
# kube-router, helm and kstatus are keyed by their own modules, so changing them never rebuilds Kubernetes.
KUBE_ROUTER_BIN=kube-router-$KUBE_ROUTER_VERSION-$(cat "$CLUSTER_DIR/kube-router/go.mod" "$CLUSTER_DIR/kube-router/go.sum" | sha256sum | cut -c1-12)
HELM_BIN=helm-$HELM_VERSION-$(cat "$CLUSTER_DIR/helm/go.mod" "$CLUSTER_DIR/helm/go.sum" | sha256sum | cut -c1-12)
# kstatus is keyed by its main.go too: that source lives here, not in a module download.
KSTATUS_BIN=kstatus-$CLI_UTILS_VERSION-$(cat "$CLUSTER_DIR/kstatus/go.mod" "$CLUSTER_DIR/kstatus/go.sum" "$CLUSTER_DIR/kstatus/main.go" | sha256sum | cut -c1-12)
BIN_CACHE="$CACHE_ROOT/cluster-bin/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-${VERSIONS_KEY}"
BIN="$STATE/bin"

NODE_NAME=casefile-node
POD_CIDR=10.88.0.0/16
POD_GATEWAY=10.88.0.1
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
# casefile's audit receiver (Service casefile-system/casefile-audit) at a fixed address: the API server
# reads its audit webhook's URL once, at start, before the operator is deployed. In the low band of the
# range, which the API server leaves to fixed assignments.
AUDIT_SERVICE_IP=10.96.0.80
API_PORT=6443
KUBELET_PORT=10250
ETCD_CLIENT_PORT=2379
ETCD_PEER_PORT=2380
CONTAINERD_SOCK=$RUN_DIR/containerd/containerd.sock
ADMIN_KUBECONFIG=$STATE/admin.kubeconfig
IMAGES_ENV=$STATE/images.env

# Fully qualified image names; never `latest`. The operator and debug-tools tags carry a
# content hash so a rebuilt image is never confused with an old one in containerd.
PAUSE_IMAGE=localhost/casefile/pause:3.10-casefile
BUSYBOX_IMAGE=localhost/casefile/busybox:1.35.0

# Components in start order; down stops them in reverse.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kube-router)

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

node_ip() {
  # The address the node advertises: the source address of the default route (no traffic is sent).
  local ip
  ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)
  [ -n "$ip" ] || ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -n1)
  [ -n "$ip" ] || die "no global IPv4 address on this machine: the node needs one to advertise (add one, e.g. 'ip addr add 192.0.2.2/24 dev eth0')"
  echo "$ip"
}

pid_of() { [ -f "$RUN_DIR/pids/$1.pid" ] && cat "$RUN_DIR/pids/$1.pid" || true; }

is_running() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# start NAME CMD... : run a component in its own session, logging to $STATE/logs/NAME.log.
start_component() {
  local name=$1; shift
  # What it runs: the resolved binary and every argument. Already up with the same: nothing to do. A
  # rebuilt binary (e.g. kube-router) or changed flags (e.g. a new API server setting) restart it.
  local running
  running="$(readlink -f "$(command -v "$1")") $(printf '%q ' "${@:2}" | sha256sum | cut -c1-16)"
  if is_running "$name"; then
    [ "$(cat "$RUN_DIR/pids/$name.bin" 2>/dev/null)" = "$running" ] && return 0
    say "restarting $name: its binary or flags changed"
    stop_component "$name"
  fi
  mkdir -p "$RUN_DIR/pids" "$STATE/logs"
  # Only stdin/stdout/stderr go to the daemon: an inherited descriptor (a caller's lock file or pipe)
  # would otherwise stay open for the daemon's whole life, holding that lock or pipe with it.
  setsid bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null; exec "$@"' \
    "$name" "$@" >>"$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/pids/$name.pid"
  echo "$running" > "$RUN_DIR/pids/$name.bin"
}

stop_component() {
  local name=$1 pid i
  pid=$(pid_of "$name")
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/pids/$name.pid" "$RUN_DIR/pids/$name.bin"
}

# wait_for DESCRIPTION SECONDS COMPONENT CMD... : poll CMD until it succeeds; fail with the component's log tail.
wait_for() {
  local what=$1 secs=$2 component=$3; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$component" ] && ! is_running "$component"; then
      tail -n 20 "$STATE/logs/$component.log" >&2 || true
      die "$component exited while waiting for $what (log above: $STATE/logs/$component.log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      [ -n "$component" ] && tail -n 20 "$STATE/logs/$component.log" >&2
      die "timed out after ${secs}s waiting for $what (log: $STATE/logs/$component.log)"
    fi
    sleep 0.5
  done
}

# write_if_changed FILE < content : rewrite only on change (kube-proxy exits when its config file is
# touched, containerd reloads the CNI directory on every write), atomically via rename.
write_if_changed() {
  local file=$1 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat > "$tmp"
  if cmp -s "$tmp" "$file"; then rm -f "$tmp"; else mv "$tmp" "$file"; fi
}

kubectl_admin() { "$BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
