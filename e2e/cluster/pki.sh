#!/usr/bin/env bash
# A throwaway CA and every certificate and kubeconfig the cluster needs, made with openssl.
# Sourced by up; idempotent (keeps what exists, so a re-run of up keeps working credentials).
# shellcheck shell=bash

PKI=$STATE/pki

pki_cert() {
  # pki_cert NAME SUBJECT [SANS] [CA] : a client/server cert signed by the cluster CA (or CA: front-proxy-ca).
  local name=$1 subject=$2 sans=${3:-} ca=${4:-ca}
  [ -f "$PKI/$name.crt" ] && return 0
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } > "$ext"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 365 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null || die "openssl could not sign $name"
  rm -f "$ext" "$PKI/$name.csr"
}

pki_ca() {
  # pki_ca NAME CN : a self-signed CA.
  local name=$1 cn=$2
  [ -f "$PKI/$name.crt" ] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/$name.key" -subj "/CN=$cn" -days 365 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/$name.crt" 2>/dev/null || die "openssl could not create the CA $name"
}

pki_kubeconfig() {
  # pki_kubeconfig NAME CERT : a kubeconfig for CERT against the API server.
  local name=$1 cert=$2 file=$STATE/$1.kubeconfig
  [ -f "$file" ] && return 0
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: casefile
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $name
  user:
    client-certificate: $PKI/$cert.crt
    client-key: $PKI/$cert.key
contexts:
- name: casefile
  context: { cluster: casefile, user: $name }
current-context: casefile
EOF
  chmod 600 "$file"
}

make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  pki_ca ca casefile-test-ca
  # The aggregation layer's own CA: the API server's front-proxy client certificate, which aggregated
  # APIs (casefile's case-file API) trust for the forwarded user's identity. Kept apart from the cluster
  # CA, as Kubernetes advises: no client certificate of the cluster CA can pose as the proxy.
  pki_ca front-proxy-ca casefile-test-front-proxy-ca
  pki_cert front-proxy-client "/CN=front-proxy-client" "" front-proxy-ca
  # The audit webhook's own CA: casefile's receiver serves with a certificate from it and trusts only
  # client certificates from it with CN kube-apiserver-audit (the API server's, in its webhook kubeconfig).
  pki_ca audit-ca casefile-test-audit-ca
  pki_cert casefile-audit "/CN=casefile-audit.casefile-system.svc" "DNS:casefile-audit.casefile-system.svc,IP:$AUDIT_SERVICE_IP" audit-ca
  pki_cert apiserver-audit-client "/CN=kube-apiserver-audit" "" audit-ca
  [ -f "$PKI/sa.key" ] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null && openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  pki_cert apiserver "/CN=kube-apiserver" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$API_SERVICE_IP"
  pki_cert apiserver-kubelet-client "/O=casefile:apiservers/CN=kube-apiserver-kubelet-client"
  pki_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
  pki_cert admin "/O=system:masters/CN=casefile-admin"
  pki_cert controller-manager "/CN=system:kube-controller-manager"
  pki_cert scheduler "/CN=system:kube-scheduler"
  pki_cert kube-proxy "/CN=system:kube-proxy"
  pki_cert kube-router "/CN=casefile-kube-router"
  pki_kubeconfig admin admin
  pki_kubeconfig controller-manager controller-manager
  pki_kubeconfig scheduler scheduler
  pki_kubeconfig kubelet kubelet
  pki_kubeconfig kube-proxy kube-proxy
  pki_kubeconfig kube-router kube-router
}
