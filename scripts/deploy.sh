#!/usr/bin/env bash
# Deploys the operator from config/all-features (config/default with every optional component) into the
# cluster KUBECONFIG points at, with the images the local cluster built (CASEFILE_OPERATOR_IMAGE, and
# CASEFILE_DEBUG_IMAGE or its digest reference CASEFILE_DEBUG_IMAGE_PINNED, from `e2e/cluster/env`), and
# waits until it is ready. Extra `KEY=VALUE` arguments become environment variables of the operator
# (the e2e tests use CASEFILE_EXIT_AFTER_PHASE for fault injection).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CASEFILE_OPERATOR_IMAGE:?run eval \"\$(e2e/cluster/env)\" first}"
: "${CASEFILE_DEBUG_IMAGE:?run eval \"\$(e2e/cluster/env)\" first}"
# The local cluster's own facts (e2e/cluster/env exports them) unless given as arguments.
args=("$@")
for name in CASEFILE_CLUSTER_CIDRS CASEFILE_RUNTIME_ROOT CASEFILE_RUNTIME_STATE; do
  if [ -n "${!name:-}" ] && ! printf '%s\n' "${args[@]}" | grep -q "^$name="; then args+=("$name=${!name}"); fi
done
set -- "${args[@]}"
extra_env=$(for kv in "$@"; do printf '        - { name: %s, value: "%s" }\n' "${kv%%=*}" "${kv#*=}"; done)
# casefile's own containers run the debug image by digest when the cluster recorded one (images.env).
debug_image=${CASEFILE_DEBUG_IMAGE_PINNED:-$CASEFILE_DEBUG_IMAGE}
# The audit receiver (config/audit) needs its Secret before the operator starts. On the local cluster
# its serving certificate and the CA of the API server's audit client come from the cluster's PKI
# (CASEFILE_AUDIT_PKI), and its Service takes the fixed address the API server's webhook dials
# (CASEFILE_AUDIT_SERVICE_IP). Elsewhere a throwaway pair: the receiver listens, and nothing posts.
kubectl get namespace casefile-system >/dev/null 2>&1 || kubectl create namespace casefile-system >/dev/null
if ! kubectl -n casefile-system get secret casefile-audit-tls >/dev/null 2>&1; then
  if [ -n "${CASEFILE_AUDIT_PKI:-}" ]; then
    kubectl -n casefile-system create secret generic casefile-audit-tls --from-file=tls.crt="$CASEFILE_AUDIT_PKI/casefile-audit.crt" \
      --from-file=tls.key="$CASEFILE_AUDIT_PKI/casefile-audit.key" --from-file=client-ca.crt="$CASEFILE_AUDIT_PKI/audit-ca.crt" >/dev/null
  else
    audit_tls=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$audit_tls/tls.key" -out "$audit_tls/tls.crt" -days 365 \
      -subj "/CN=casefile-audit.casefile-system.svc" -addext "subjectAltName=DNS:casefile-audit.casefile-system.svc" 2>/dev/null
    kubectl -n casefile-system create secret generic casefile-audit-tls --from-file=tls.crt="$audit_tls/tls.crt" \
      --from-file=tls.key="$audit_tls/tls.key" --from-file=client-ca.crt="$audit_tls/tls.crt" >/dev/null
    rm -rf "$audit_tls"
  fi
fi
# The case-file API's serving certificate (config/case-api): made once per cluster with a throwaway CA
# kept beside it in Secret casefile-case-api-tls, whose ca.crt becomes the APIService's caBundle. Made
# before the operator starts: it reads the certificate at start and only re-reads it every 5 minutes.
if ! kubectl -n casefile-system get secret casefile-case-api-tls >/dev/null 2>&1; then
  tls=$(mktemp -d)
  trap 'rm -rf "$tls"' EXIT
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 365 -subj "/CN=casefile-case-api-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$tls/tls.key" -out "$tls/tls.csr" -subj "/CN=casefile-case-api.casefile-system.svc" 2>/dev/null
  printf 'subjectAltName=DNS:casefile-case-api.casefile-system.svc\nextendedKeyUsage=serverAuth\n' > "$tls/ext"
  openssl x509 -req -in "$tls/tls.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 365 -extfile "$tls/ext" -out "$tls/tls.crt" 2>/dev/null
  kubectl -n casefile-system create secret generic casefile-case-api-tls \
    --from-file=tls.crt="$tls/tls.crt" --from-file=tls.key="$tls/tls.key" --from-file=ca.crt="$tls/ca.crt" >/dev/null
fi
kubectl kustomize config/all-features |
  sed -e "s#image: localhost/casefile/operator:0.1.0#image: $CASEFILE_OPERATOR_IMAGE#" \
      -e "s#localhost/casefile/debug-tools:0.1.0#$debug_image#g" \
      -e 's#imagePullPolicy: IfNotPresent#imagePullPolicy: Never#' |
  awk -v extra="$extra_env" '{print} /^        env:$/ && extra != "" {print extra}' |
  awk -v ip="${CASEFILE_AUDIT_SERVICE_IP:-}" '
    /^---$/ { service = 0; audit = 0 }
    /^kind: Service$/ { service = 1 }
    service && /^  name: casefile-audit$/ { audit = 1 }
    { print }
    audit && ip != "" && /^spec:$/ { print "  clusterIP: " ip }' |
  kubectl apply --server-side --force-conflicts -f - >/dev/null
ca_bundle=$(kubectl -n casefile-system get secret casefile-case-api-tls -o jsonpath='{.data.ca\.crt}')
kubectl patch apiservice v1alpha1.cases.casefile.dev --type merge -p "{\"spec\":{\"caBundle\":\"$ca_bundle\"}}" >/dev/null
kubectl wait --for=condition=Established crd/investigations.casefile.dev crd/responsepolicies.casefile.dev crd/clusterresponsepolicies.casefile.dev --timeout=60s >/dev/null
kubectl -n casefile-system rollout status deployment/casefile-operator --timeout=180s >/dev/null
# The local cluster only: a connection the API server opened to a Service address before kube-proxy
# had programmed it bypasses NAT, reaches whatever answers on the host's network (a 404 here), and
# stays open (keep-alive), so the APIService never turns Available. Drop such flows once the operator
# is ready: the API server reconnects through the Service.
if [ -n "${CASEFILE_CLUSTER_STATE:-}" ] && command -v conntrack >/dev/null; then
  for svc in casefile-case-api casefile-audit; do
    ip=$(kubectl -n casefile-system get service "$svc" -o jsonpath='{.spec.clusterIP}' 2>/dev/null || true)
    [ -n "$ip" ] && { conntrack -D -d "$ip" >/dev/null 2>&1 || true; }
  done
fi
echo "casefile operator ready: $CASEFILE_OPERATOR_IMAGE"
