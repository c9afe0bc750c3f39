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
# Binaries land here first and move into ${dest} only once built, so an
# interrupted build never leaves a half-written one in the cache.
out="${work}/out"
mkdir -p "${out}"

# All the Kubernetes commands in one `go build`: they share most of their
# packages, and one build keeps both cores busy to the last link instead of
# one build per command, each ending on a single-threaded link.
build_k8s() { # $@: packages under k8s.io/kubernetes/cmd
  local mod="${work}/k8s"
  mkdir -p "${mod}"
  cd "${mod}"
  go mod init claiim.local/k8s-build >/dev/null 2>&1
  go mod edit -require="k8s.io/kubernetes@v${K8S_VERSION}"
  # k8s.io/kubernetes replaces its staging modules with ./staging/...; a
  # module that requires it must point them at the published versions.
  local dl gomod
  # On failure the reason is in the JSON it prints (its "Error").
  dl=$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}") || { echo "${dl}"; return 1; }
  gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"${dl}")
  local staging=0
  for m in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "${gomod}"); do
    go mod edit -replace="${m}=${m}@v0.${K8S_VERSION#1.}"
    staging=$((staging + 1))
  done
  [[ ${staging} -gt 0 ]] || { echo "found no staging replaces in ${gomod}"; return 1; }
  # Stamp the version, as Kubernetes' own build does: without it the
  # apiserver reports v0.0.0 and version checks (Helm's kubeVersion) fail.
  local minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  local v c pkgs=() ldflags="-s -w"
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${v}.gitVersion=v${K8S_VERSION} -X ${v}.gitMajor=1 -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean"
  done
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/${c}@v${K8S_VERSION}"); done
  go get "${pkgs[@]}" || true
  go build -trimpath -ldflags "${ldflags}" -o "${out}/" "${pkgs[@]%@*}"
}

# etcd pins other versions of the libraries Kubernetes uses (gRPC, otel,
# ...), so it builds in its own module, beside the Kubernetes build.
build_etcd() {
  local mod="${work}/etcd"
  mkdir -p "${mod}"
  cd "${mod}"
  go mod init claiim.local/etcd-build >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
  go build -trimpath -ldflags "-s -w" -o "${out}/etcd" go.etcd.io/etcd/server/v3
}

k8s_cmds=()
etcd=0
for b in "${missing[@]}"; do
  case "$b" in
    etcd) etcd=1 ;;
    *) k8s_cmds+=("$b") ;;
  esac
done
# What a person should expect on 2 idle cores from empty Go caches: a cold
# make demo takes 880 CPU-seconds (README.md), so at least 7.3 minutes;
# etcd builds beside the rest, so it adds nothing to a Kubernetes build.
minutes=0
[[ ${etcd} == 1 ]] && minutes=3
[[ " ${k8s_cmds[*]} " == *" kube-apiserver "* || " ${k8s_cmds[*]} " == *" kubectl "* ]] && minutes=9
[[ " ${k8s_cmds[*]} " == *" kubelet "* ]] && minutes=$((minutes + 5))
names=
if [[ ${#k8s_cmds[@]} -gt 0 ]]; then
  names=$(printf '%s, ' "${k8s_cmds[@]}")
  names="${names%, } v${K8S_VERSION}"
fi
[[ ${etcd} == 1 ]] && names+="${names:+ and }etcd v${ETCD_VERSION}"
side=
[[ ${etcd} == 1 && ${#k8s_cmds[@]} -gt 0 ]] && side=", side by side"
log "building ${names} from source${side} (first run only, ~${minutes} min on 2 idle cores, longer on a busy machine; cached in ${dest#"${root}/"})..."
start=${SECONDS}

# Each build's output goes to a file, shown only when it fails: the
# progress stays one line per step instead of hundreds of "go: downloading".
pids=() logs=()
if [[ ${etcd} == 1 ]]; then
  build_etcd >"${work}/etcd.log" 2>&1 &
  pids+=($!) logs+=("${work}/etcd.log")
fi
if [[ ${#k8s_cmds[@]} -gt 0 ]]; then
  build_k8s "${k8s_cmds[@]}" >"${work}/k8s.log" 2>&1 &
  pids+=($!) logs+=("${work}/k8s.log")
fi
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    log "the build failed; its last lines (${logs[$i]##*/}):"
    tail -n 40 "${logs[$i]}" >&2
    failed=1
  fi
done
[[ ${failed} == 0 ]] || exit 1
mv "${out}"/* "${dest}/"
log "built ${names} in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"

"${dest}/etcd" --version >/dev/null
"${dest}/kube-apiserver" --version | grep -q "v${K8S_VERSION}" || { log "kube-apiserver does not report v${K8S_VERSION}"; exit 1; }
echo "${recipe}" > "${dest}/.recipe"
echo "${dest}"
