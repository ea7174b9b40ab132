#!/usr/bin/env bash
# Builds the cluster's images as OCI image-layout tarballs (no Docker, no registry) and imports
# them into containerd's k8s.io namespace. Writes the names to $STATE/images.env.
#   pause        the sandbox image named in containerd's sandbox_image
#   busybox      workloads for tests (busybox-static from Debian)
#   debug-tools  the default image of the operator's ephemeral debug containers
#   operator     the project's build output + the host's node runtime and the libraries it links
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE_CACHE="$CACHE_ROOT/images"
mkdir -p "$IMAGE_CACHE"
BUSYBOX_BIN=/bin/busybox
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
# Checked when images are built, not when this file is sourced: up installs busybox-static first.
require_static_busybox() {
  [ -x "$BUSYBOX_BIN" ] || die "busybox-static is missing: apt-get install busybox-static"
  file_is_static "$BUSYBOX_BIN" || die "$BUSYBOX_BIN is not static: apt-get install busybox-static"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# oci_tar NAME ROOTFS CONFIG_JSON OUT : one-layer OCI image layout, reproducible (sorted, mtime 0).
oci_tar() {
  local name=$1 rootfs=$2 config=$3 out=$4 work
  work=$(mktemp -d)
  mkdir -p "$work/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer.tar" .
  local diff_id layer_digest layer_size config_digest config_size manifest_digest manifest_size
  diff_id=$(sha "$work/layer.tar")
  gzip -n -1 "$work/layer.tar"
  layer_digest=$(sha "$work/layer.tar.gz"); layer_size=$(stat -c %s "$work/layer.tar.gz")
  mv "$work/layer.tar.gz" "$work/blobs/sha256/$layer_digest"
  jq -c --arg d "sha256:$diff_id" \
    '{architecture:"amd64", os:"linux", config:., rootfs:{type:"layers", diff_ids:[$d]}}' \
    <<<"$config" > "$work/config.json"
  config_digest=$(sha "$work/config.json"); config_size=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$work/blobs/sha256/$config_digest"
  jq -nc --arg cd "sha256:$config_digest" --argjson cs "$config_size" --arg ld "sha256:$layer_digest" --argjson ls "$layer_size" \
    '{schemaVersion:2, mediaType:"application/vnd.oci.image.manifest.v1+json",
      config:{mediaType:"application/vnd.oci.image.config.v1+json", digest:$cd, size:$cs},
      layers:[{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip", digest:$ld, size:$ls}]}' > "$work/manifest.json"
  manifest_digest=$(sha "$work/manifest.json"); manifest_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$work/blobs/sha256/$manifest_digest"
  jq -nc --arg md "sha256:$manifest_digest" --argjson ms "$manifest_size" --arg name "$name" --arg tag "${name##*:}" \
    '{schemaVersion:2, manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json", digest:$md, size:$ms,
      platform:{architecture:"amd64", os:"linux"},
      annotations:{"io.containerd.image.name":$name, "org.opencontainers.image.ref.name":$tag}}]}' > "$work/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$work/oci-layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

# A minimal /etc so images have users and name resolution files.
base_etc() {
  local rootfs=$1
  mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\nnobody:x:65534:\n' > "$rootfs/etc/group"
  : > "$rootfs/etc/hosts"; : > "$rootfs/etc/resolv.conf"
}

busybox_rootfs() {
  local rootfs=$1
  base_etc "$rootfs"
  mkdir -p "$rootfs/bin"
  cp "$BUSYBOX_BIN" "$rootfs/bin/busybox"
  local applet
  for applet in $("$BUSYBOX_BIN" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
}

# import NAME TAR : import into containerd unless that exact image is already there.
import_image() {
  local name=$1 tar=$2
  ctr -a "$CONTAINERD_SOCK" -n k8s.io images import "$tar" >/dev/null ||
    die "importing $name from $tar into containerd failed"
}

build_image() {
  local name=$1 key=$2 builder=$3 config=$4
  local out="$IMAGE_CACHE/$(echo "$name" | tr '/:' '__')-$key.tar"
  if [ ! -f "$out" ]; then
    local rootfs
    rootfs=$(mktemp -d)
    "$builder" "$rootfs"
    oci_tar "$name" "$rootfs" "$config" "$out"
    rm -rf "$rootfs"
  fi
  import_image "$name" "$out"
}

pause_rootfs() {
  local rootfs=$1
  base_etc "$rootfs"
  cp "$BIN/pause" "$rootfs/pause"
}

# The debug-tools image: busybox for a human at a shell, plus node and casefile's collectors,
# which read /proc of the target and stream JSON back (they run here, never in the suspect).
debug_rootfs() {
  local rootfs=$1
  busybox_rootfs "$rootfs"
  node_runtime "$rootfs"
  app_tree "$rootfs"
}

operator_rootfs() {
  local rootfs=$1
  base_etc "$rootfs"
  node_runtime "$rootfs"
  app_tree "$rootfs"
}

# The host's node binary and exactly the shared libraries it links (as ldd reports them).
node_runtime() {
  local rootfs=$1 node lib
  node=$(readlink -f "$(command -v node)")
  mkdir -p "$rootfs/usr/bin"
  cp "$node" "$rootfs/usr/bin/node"
  for lib in $(ldd "$node" | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}

app_tree() {
  local rootfs=$1
  mkdir -p "$rootfs/app"
  cp -r "$REPO_DIR/dist" "$rootfs/app/dist"
  cp "$REPO_DIR/package.json" "$rootfs/app/"
  cp -r "$PROD_MODULES/node_modules" "$rootfs/app/node_modules"
}

# Production dependencies only, installed once per lockfile.
prod_modules() {
  local key
  key=$(sha256sum "$REPO_DIR/package-lock.json" | cut -c1-12)
  PROD_MODULES="$IMAGE_CACHE/prod-modules-$key"
  if [ ! -d "$PROD_MODULES/node_modules" ]; then
    say "installing production node_modules for the operator image"
    rm -rf "$PROD_MODULES.tmp" && mkdir -p "$PROD_MODULES.tmp"
    cp "$REPO_DIR/package.json" "$REPO_DIR/package-lock.json" "$PROD_MODULES.tmp/"
    (cd "$PROD_MODULES.tmp" && npm install --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null) ||
      die "npm install --omit=dev failed for the operator image"
    mv "$PROD_MODULES.tmp" "$PROD_MODULES"
  fi
}

build_all_images() {
  require_static_busybox
  [ -d "$REPO_DIR/dist" ] || die "no build output in $REPO_DIR/dist: run 'npm install && npm run build' first"
  prod_modules
  local app_key node_key
  node_key=$(sha256sum "$(readlink -f "$(command -v node)")" | cut -c1-8)
  app_key=$( (cd "$REPO_DIR" && find dist -type f -print0 | sort -z | xargs -0 sha256sum; echo "$PROD_MODULES $node_key") | sha256sum | cut -c1-12)
  local version
  version=$(jq -r .version "$REPO_DIR/package.json")
  OPERATOR_IMAGE="localhost/casefile/operator:${version}-${app_key}"
  DEBUG_IMAGE="localhost/casefile/debug-tools:${version}-${app_key}"

  # kind brings its own sandbox image; the local cluster needs ours.
  [ "${SKIP_PAUSE_IMAGE:-0}" = 1 ] ||
    build_image "$PAUSE_IMAGE" "$(sha "$BIN/pause" | cut -c1-12)" pause_rootfs '{"Entrypoint":["/pause"],"User":"65535:65535"}'
  build_image "$BUSYBOX_IMAGE" "$(sha "$BUSYBOX_BIN" | cut -c1-12)" busybox_rootfs '{"Cmd":["sh"],"Env":["PATH=/bin"]}'
  build_image "$DEBUG_IMAGE" "$app_key" debug_rootfs \
    '{"Cmd":["sleep","infinity"],"Env":["PATH=/bin:/usr/bin","NODE_ENV=production"],"WorkingDir":"/app"}'
  build_image "$OPERATOR_IMAGE" "$app_key" operator_rootfs \
    '{"Entrypoint":["/usr/bin/node","/app/dist/cli/main.js"],"Cmd":["operator"],"Env":["PATH=/usr/bin","NODE_ENV=production"],"User":"65532:65532","WorkingDir":"/app"}'

  local debug_pinned
  debug_pinned=$(pin_by_digest "$DEBUG_IMAGE")
  cat > "$IMAGES_ENV" <<EOF
CASEFILE_PAUSE_IMAGE=$PAUSE_IMAGE
CASEFILE_BUSYBOX_IMAGE=$BUSYBOX_IMAGE
CASEFILE_DEBUG_IMAGE=$DEBUG_IMAGE
CASEFILE_DEBUG_IMAGE_PINNED=$debug_pinned
CASEFILE_OPERATOR_IMAGE=$OPERATOR_IMAGE
EOF
}

# pin_by_digest NAME : prints NAME's digest reference (repo@sha256:...) after giving the imported image
# that name too, so the kubelet finds it by digest without a registry (casefile's own containers are
# configured by digest: scripts/deploy.sh). Prints nothing where that is not possible (kind).
pin_by_digest() {
  local name=$1 digest pinned
  [ -n "${CONTAINERD_SOCK:-}" ] && command -v ctr >/dev/null || return 0
  digest=$(ctr -a "$CONTAINERD_SOCK" -n k8s.io images ls "name==$name" 2>/dev/null | awk 'NR == 2 {print $3}')
  case "$digest" in sha256:*) ;; *) return 0 ;; esac
  pinned="${name%:*}@$digest"
  ctr -a "$CONTAINERD_SOCK" -n k8s.io images tag --force "$name" "$pinned" >/dev/null 2>&1 && echo "$pinned"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then build_all_images; fi
