#!/usr/bin/env bash
# The one-node cluster's certificates (hack/cluster.sh): a CA, the
# apiserver's serving certificate, a client certificate per component, the
# kubelet's serving certificate and the ServiceAccount signing key.
# Usage: hack/cluster-pki.sh DIR NODE NODE_IP API_SERVICE_IP
set -euo pipefail
dir=$1 node=$2 node_ip=$3 api_ip=$4
cd "${dir}"
openssl_quiet() { openssl "$@" 2>/dev/null; }

openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -subj "/CN=claiim-cluster-ca" -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# cert NAME SUBJECT USAGE [SANS]
cert() {
  local ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$3"
  [[ -n "${4:-}" ]] && ext+="
subjectAltName=$4"
  openssl_quiet req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "$2" -keyout "$1.key" -out "$1.csr"
  openssl_quiet x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" \
    -days 7 -extfile <(echo "${ext}") -out "$1.crt"
  rm -f "$1.csr"
}
cert apiserver "/CN=kube-apiserver" serverAuth \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:${api_ip},IP:${node_ip},IP:127.0.0.1"
cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert admin "/O=system:masters/CN=cluster-admin" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kube-proxy "/CN=system:kube-proxy" clientAuth
cert kubelet "/O=system:nodes/CN=system:node:${node}" clientAuth
cert kubelet-serving "/O=system:nodes/CN=system:node:${node}" serverAuth "DNS:${node},IP:${node_ip}"
# The people of the tests, as an identity provider would name them.
cert user-admin "/CN=admin@claiim.io" clientAuth
cert user-peer "/CN=peer@claiim.io" clientAuth
openssl_quiet genrsa -out sa.key 2048
openssl_quiet rsa -in sa.key -pubout -out sa.pub
chmod 600 ./*.key
