#!/usr/bin/env bash
# What hack/cluster.sh needs that the project builds: the node's Kubernetes
# binaries (bin/k8s/<version>/, the envtest recipe), CoreDNS with only the
# plugins the cluster uses (bin/coredns-<version>), and its image. The
# project's own images come from make image image-pause (the Makefile's
# cluster-assets target runs all of it). Cached: a second run builds nothing.
set -euo pipefail
: "${COREDNS_VERSION:?set COREDNS_VERSION (the Makefile does)}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "cluster-assets: $*" >&2; }

WITH_NODE=1 "${root}/hack/envtest-assets.sh" >/dev/null

coredns=${root}/bin/coredns-${COREDNS_VERSION}
if [[ ! -x "${coredns}" ]]; then
  log "building CoreDNS v${COREDNS_VERSION} from source (a few minutes)"
  work=$(mktemp -d)
  trap 'rm -rf "${work}"' EXIT
  cat >"${work}/main.go" <<'GO'
// CoreDNS with the plugins a cluster without internet needs: no forward.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	dnsserver.Directives = []string{"errors", "health", "ready", "cache", "kubernetes"}
	coremain.Run()
}
GO
  (
    cd "${work}"
    go mod init claiim.local/coredns-build >/dev/null 2>&1
    GOFLAGS=-mod=mod go get "github.com/coredns/coredns@v${COREDNS_VERSION}" >/dev/null 2>&1
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${coredns}" .
  )
fi
mkdir -p "${root}/bin/images"
if [[ ! -f "${root}/bin/images/coredns.tar" || "${coredns}" -nt "${root}/bin/images/coredns.tar" ]]; then
  (cd "${root}" && go run ./hack/image -o bin/images/coredns.tar -ref registry.k8s.io/coredns:claiim \
    -add "${coredns}:/coredns" -entrypoint /coredns -user 65532:65532)
fi
