#!/usr/bin/env bash
# Provides kube-apiserver and etcd for envtest and prints the directory that
# holds them (the value for KUBEBUILDER_ASSETS).
#
# Order: $KUBEBUILDER_ASSETS if it already holds both binaries; else a cached
# build under bin/k8s/<version>/; else a build from source through the Go
# module proxy. The usual envtest download needs the internet, which these
# machines do not have, so we compile the same binaries ourselves.
#
# Versions come from the Makefile (the one place they are pinned).
set -euo pipefail

: "${K8S_VERSION:?set K8S_VERSION (the Makefile does), e.g. 1.37.2}"
: "${ETCD_VERSION:?set ETCD_VERSION (the Makefile does), e.g. 3.7.0}"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
  echo "${KUBEBUILDER_ASSETS}"
  exit 0
fi

dest="${root}/bin/k8s/${K8S_VERSION}"
want=(kube-apiserver etcd)
[[ "${WITH_KUBECTL:-0}" == 1 || "${WITH_NODE:-0}" == 1 ]] && want+=(kubectl)
# The one-node cluster's other parts (hack/cluster.sh), same recipe.
[[ "${WITH_NODE:-0}" == 1 ]] && want+=(kube-controller-manager kube-scheduler kubelet kube-proxy)
# Bump when the way the binaries are built changes, so caches rebuild.
recipe=2

missing=()
[[ "$(cat "${dest}/.recipe" 2>/dev/null)" == "${recipe}" ]] || rm -f "${dest}"/{kube-apiserver,kubectl,etcd,kube-controller-manager,kube-scheduler,kubelet,kube-proxy}
for b in "${want[@]}"; do [[ -x "${dest}/${b}" ]] || missing+=("$b"); done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "${dest}"
  exit 0
fi

log() { echo "envtest-assets: $*" >&2; }
mkdir -p "${dest}"
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0

build_k8s() { # $@: packages under k8s.io/kubernetes/cmd
  local mod="${work}/k8s"
  mkdir -p "${mod}"
  cd "${mod}"
  go mod init claiim.local/k8s-build >/dev/null 2>&1
  go mod edit -require="k8s.io/kubernetes@v${K8S_VERSION}"
  # k8s.io/kubernetes replaces its staging modules with ./staging/...; a
  # module that requires it must point them at the published versions.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging=0
  for m in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "${gomod}"); do
    go mod edit -replace="${m}=${m}@v0.${K8S_VERSION#1.}"
    staging=$((staging + 1))
  done
  [[ ${staging} -gt 0 ]] || { log "found no staging replaces in ${gomod}"; exit 1; }
  # Stamp the version, as Kubernetes' own build does: without it the
  # apiserver reports v0.0.0 and version checks (Helm's kubeVersion) fail.
  local minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  local v ldflags="-s -w"
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${v}.gitVersion=v${K8S_VERSION} -X ${v}.gitMajor=1 -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean"
  done
  for c in "$@"; do
    log "building ${c} v${K8S_VERSION} from source (several minutes on 2 cores)"
    go get "k8s.io/kubernetes/cmd/${c}@v${K8S_VERSION}" >/dev/null 2>&1 || true
    go build -trimpath -ldflags "${ldflags}" -o "${dest}/${c}" "k8s.io/kubernetes/cmd/${c}"
  done
}

build_etcd() {
  local mod="${work}/etcd"
  mkdir -p "${mod}"
  cd "${mod}"
  go mod init claiim.local/etcd-build >/dev/null 2>&1
  log "building etcd v${ETCD_VERSION} from source"
  go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >/dev/null
  go build -trimpath -ldflags "-s -w" -o "${dest}/etcd" go.etcd.io/etcd/server/v3
}

k8s_cmds=()
for b in "${missing[@]}"; do
  case "$b" in
    etcd) build_etcd ;;
    *) k8s_cmds+=("$b") ;;
  esac
done
[[ ${#k8s_cmds[@]} -gt 0 ]] && build_k8s "${k8s_cmds[@]}"

"${dest}/etcd" --version >/dev/null
"${dest}/kube-apiserver" --version | grep -q "v${K8S_VERSION}" || { log "kube-apiserver does not report v${K8S_VERSION}"; exit 1; }
echo "${recipe}" > "${dest}/.recipe"
echo "${dest}"
