#!/usr/bin/env bash
# make e2e-cluster: a fresh one-node cluster, test/cluster run inside its
# network namespace, the cluster torn down, and the host compared with what
# it was before: anything left behind fails the run. Needs root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${root}"
: "${HELM:?set HELM (the Makefile does)}"
state=${CLUSTER_STATE:-/var/lib/claiim-cluster}
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT

started=$(date +%s)
hack/cluster.sh snapshot >"${work}/before"
status=0
hack/cluster.sh up || status=$?
echo "e2e-cluster: cluster up in $(($(date +%s) - started))s"
if [[ ${status} == 0 ]]; then
  CLAIIM_CLUSTER_STATE=${state} HELM=${HELM} hack/cluster.sh exec \
    go test ./test/cluster/... -count=1 -v -timeout 40m ${TESTFLAGS:-} || status=$?
fi
hack/cluster.sh down
hack/cluster.sh snapshot >"${work}/after"
if ! diff -u "${work}/before" "${work}/after"; then
  echo "e2e-cluster: hack/cluster.sh down left the host changed (diff above)" >&2
  status=1
fi
echo "e2e-cluster: $([[ ${status} == 0 ]] && echo passed || echo FAILED) in $(($(date +%s) - started))s"
exit "${status}"
