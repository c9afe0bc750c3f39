#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine, for the project's own tests:
#   hack/cluster.sh up       start it (idempotent: a running cluster is kept)
#   hack/cluster.sh down     stop it and undo every change to the host
#   hack/cluster.sh exec CMD run CMD where the cluster's addresses are reachable
#   hack/cluster.sh snapshot print the host state down must restore
#
# Everything runs inside the network namespace ${CLUSTER_NETNS} and one
# mount namespace: every address (node, pods, Services) lives there, and
# the kubelet's mounts die with it. What cannot be namespaced (cgroups,
# kernel.* and vm.* sysctls, directories with fixed paths) is recorded
# before it changes and restored by `down`, which also runs when `up` fails.
# Needs root. See docs/e2e.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${K8S_VERSION:?set K8S_VERSION (the Makefile does)}"
NETNS=${CLUSTER_NETNS:-claiim-cluster}
STATE=${CLUSTER_STATE:-/var/lib/claiim-cluster}
K8S_BIN=${K8S_BIN:-${root}/bin/k8s/${K8S_VERSION}}
IMAGES=${CLUSTER_IMAGES:-${root}/bin/images}
NODE=claiim-node
NODE_IP=10.200.0.2
POD_SUBNET=10.244.0.0/24
SERVICE_RANGE=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
PAUSE_IMAGE=${PAUSE_IMAGE:-registry.k8s.io/pause:claiim}
# Fixed paths some parts write whatever they are told; down removes the
# ones up found absent.
FIXED_DIRS=(/var/lib/cni /var/log/containers /var/log/pods /run/containerd /var/lib/kubelet /opt/containerd /etc/cni)
# The global sysctls the kubelet sets (it leaves them alone only when
# protectKernelDefaults is on, which then fails on these machines' values).
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
CGROUP_NAMES=(kubepods kubepods.slice claiim-cluster)

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }
in_ns() { nsenter --net="/run/netns/${NETNS}" --mount="/proc/$(cat "${STATE}/pids/holder")/ns/mnt" --wd="${PWD}" -- "$@"; }
kc() { in_ns "${K8S_BIN}/kubectl" --kubeconfig "${STATE}/admin.kubeconfig" "$@"; }

snapshot() {
  echo "# netns"; ip netns list 2>/dev/null | awk '{print $1}' | sort
  echo "# mounts"; awk '{print $2, $3}' /proc/self/mounts | grep -v '^/proc/' | sort
  echo "# cgroups"; for n in "${CGROUP_NAMES[@]}"; do ls -d /sys/fs/cgroup/*/"${n}" 2>/dev/null || true; done
  echo "# sysctls"; for s in "${SYSCTLS[@]}"; do sysctl -n "${s}" | sed "s/^/${s}=/"; done
  echo "# dirs"; for d in "${FIXED_DIRS[@]}" "${STATE}"; do [[ -e "${d}" ]] && echo "${d}"; done; true
  echo "# nftables"; nft list tables 2>/dev/null | sort
  echo "# interfaces"; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
  echo "# processes"; for p in /proc/[0-9]*; do
    exe=$(readlink "${p}/exe" 2>/dev/null) || continue
    case "${exe}" in "${K8S_BIN}"/* | */containerd* | */coredns | */claiim | "${root}"/bin/*) echo "${exe}" ;; esac
  done | sort
}

running() { [[ -f "${STATE}/pids/holder" ]] && kill -0 "$(cat "${STATE}/pids/holder")" 2>/dev/null; }

# start NAME CMD...: runs CMD in the namespaces, logs to ${STATE}/logs/NAME.log
start() {
  local name=$1; shift
  # nsenter and setsid exec: $! is the component itself.
  nsenter --net="/run/netns/${NETNS}" --mount="/proc/$(cat "${STATE}/pids/holder")/ns/mnt" -- \
    setsid "$@" >"${STATE}/logs/${name}.log" 2>&1 </dev/null &
  echo $! >"${STATE}/pids/${name}"
}

wait_for() { # DESCRIPTION SECONDS CMD...
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "${what} not ready after ${secs}s; last lines of the logs in ${STATE}/logs:"
  tail -n 15 "${STATE}"/logs/*.log >&2 || true
  return 1
}

up() {
  [[ $(id -u) == 0 ]] || die "needs root (it creates a network namespace, cgroups and mounts)"
  if running; then log "already running (${STATE}); hack/cluster.sh down to stop it"; return 0; fi
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    [[ -x "${K8S_BIN}/${b}" ]] || die "${K8S_BIN}/${b} missing: run make cluster-assets"
  done
  for b in containerd containerd-shim-runc-v2 runc ctr nft openssl; do
    command -v "${b}" >/dev/null || die "${b} missing: run hack/ensure-deps.sh cluster"
  done
  [[ -x /usr/lib/cni/bridge ]] || die "/usr/lib/cni/bridge missing: run hack/ensure-deps.sh cluster"
  [[ -f "${IMAGES}/pause.tar" ]] || die "${IMAGES}/pause.tar missing: run make cluster-assets"
  [[ -d "${STATE}" ]] && die "${STATE} exists but no cluster runs: hack/cluster.sh down first"

  mkdir -p "${STATE}"/{pids,logs,pki,etcd,cni/net.d,cni/ipam,containerd,kubelet,pods}
  snapshot >"${STATE}/before"
  for s in "${SYSCTLS[@]}"; do echo "${s}=$(sysctl -n "${s}")"; done >"${STATE}/sysctls"
  trap 'log "up failed; undoing"; down' ERR

  # The network: the node's address on a bridge (these kernels have no
  # dummy interfaces); a default route so components find an interface.
  ip netns add "${NETNS}"
  ip -n "${NETNS}" link set lo up
  ip -n "${NETNS}" link add node0 type bridge
  ip -n "${NETNS}" addr add "${NODE_IP}/24" dev node0
  ip -n "${NETNS}" link set node0 up
  ip -n "${NETNS}" route add default via 10.200.0.1 dev node0 onlink
  ip netns exec "${NETNS}" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1

  # One mount namespace for every component, so containerd sees the
  # kubelet's volume mounts and none of them reaches the host.
  # Every process up starts, and all they start (shims, pods), stays in
  # this cgroup or the kubelet's: down finds them by cgroup, not by memory.
  mkdir -p /sys/fs/cgroup/pids/claiim-cluster
  echo $$ >/sys/fs/cgroup/pids/claiim-cluster/cgroup.procs
  # (Not ip netns exec: its fresh /sys would hide the cgroup mounts.)
  nsenter --net="/run/netns/${NETNS}" unshare --mount --propagation private -- sh -c \
    "mount --make-rshared / && exec sleep infinity" >"${STATE}/logs/holder.log" 2>&1 &
  echo $! >"${STATE}/pids/holder"
  wait_for "mount namespace" 10 in_ns findmnt -no PROPAGATION / 

  "${root}/hack/cluster-pki.sh" "${STATE}/pki" "${NODE}" "${NODE_IP}" "${API_SERVICE_IP}"
  write_configs

  start etcd "${K8S_BIN}/etcd" --data-dir "${STATE}/etcd" --unsafe-no-fsync \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  local pki=${STATE}/pki
  start kube-apiserver "${K8S_BIN}/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --advertise-address "${NODE_IP}" --secure-port 6443 --service-cluster-ip-range "${SERVICE_RANGE}" \
    --client-ca-file "${pki}/ca.crt" --tls-cert-file "${pki}/apiserver.crt" --tls-private-key-file "${pki}/apiserver.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "${pki}/sa.pub" --service-account-signing-key-file "${pki}/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged \
    --kubelet-client-certificate "${pki}/apiserver-kubelet.crt" --kubelet-client-key "${pki}/apiserver-kubelet.key" \
    --kubelet-preferred-address-types InternalIP
  wait_for kube-apiserver 90 kc get --raw /readyz
  start kube-controller-manager "${K8S_BIN}/kube-controller-manager" --kubeconfig "${STATE}/controller-manager.kubeconfig" \
    --service-account-private-key-file "${pki}/sa.key" --root-ca-file "${pki}/ca.crt" --use-service-account-credentials \
    --cluster-signing-cert-file "${pki}/ca.crt" --cluster-signing-key-file "${pki}/ca.key" --leader-elect=false \
    --bind-address 127.0.0.1
  start kube-scheduler "${K8S_BIN}/kube-scheduler" --kubeconfig "${STATE}/scheduler.kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1
  start containerd containerd --config "${STATE}/containerd.toml"
  wait_for containerd 30 in_ns ctr --address "${STATE}/containerd/containerd.sock" version
  local img
  for img in "${IMAGES}"/*.tar; do
    in_ns ctr --address "${STATE}/containerd/containerd.sock" -n k8s.io images import --no-unpack=false "${img}" >/dev/null
  done
  start kubelet "${K8S_BIN}/kubelet" --config "${STATE}/kubelet.yaml" --kubeconfig "${STATE}/kubelet.kubeconfig" \
    --node-ip "${NODE_IP}" --hostname-override "${NODE}" --root-dir "${STATE}/kubelet" --cert-dir "${STATE}/kubelet/pki"
  start kube-proxy "${K8S_BIN}/kube-proxy" --config "${STATE}/kube-proxy.yaml"
  wait_for "node ${NODE}" 120 kc wait --for=condition=Ready "node/${NODE}" --timeout=1s
  kc apply -f "${root}/hack/cluster-dns.yaml" >/dev/null
  wait_for "CoreDNS" 120 kc -n kube-system rollout status deploy/coredns --timeout=1s
  trap - ERR
  log "up: KUBECONFIG=${STATE}/admin.kubeconfig, reachable through hack/cluster.sh exec"
}

write_configs() {
  local pki=${STATE}/pki
  kubeconfig() { # NAME CERT
    cat >"${STATE}/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: claiim, cluster: {server: "https://${NODE_IP}:6443", certificate-authority: "${pki}/ca.crt"}}]
users: [{name: ${1#users/}, user: {client-certificate: "${pki}/$2.crt", client-key: "${pki}/$2.key"}}]
contexts: [{name: claiim, context: {cluster: claiim, user: ${1#users/}}}]
current-context: claiim
EOF
  }
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kubelet kubelet
  kubeconfig kube-proxy kube-proxy
  mkdir -p "${STATE}/users"
  kubeconfig users/admin@claiim.io user-admin
  kubeconfig users/peer@claiim.io user-peer
  : >"${STATE}/resolv.conf"
  cat >"${STATE}/containerd.toml" <<EOF
version = 2
root = "${STATE}/containerd/root"
state = "${STATE}/containerd/state"
[grpc]
  address = "${STATE}/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "${STATE}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # Without it runc fails: root here lacks CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${STATE}/cni/net.d"
EOF
  cat >"${STATE}/cni/net.d/10-claiim.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "claiim", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "${STATE}/cni/ipam",
            "ranges": [[{"subnet": "${POD_SUBNET}"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
  cat >"${STATE}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: "${pki}/ca.crt"}}
authorization: {mode: Webhook}
tlsCertFile: "${pki}/kubelet-serving.crt"
tlsPrivateKeyFile: "${pki}/kubelet-serving.key"
containerRuntimeEndpoint: "unix://${STATE}/containerd/containerd.sock"
cgroupDriver: cgroupfs
# cgroup v1 is deprecated; these machines have only v1 controllers.
failCgroupV1: false
failSwapOn: false
readOnlyPort: 0
clusterDNS: ["${DNS_IP}"]
clusterDomain: cluster.local
resolvConf: "${STATE}/resolv.conf"
podLogsDir: "${STATE}/pods"
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  cat >"${STATE}/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "${STATE}/kube-proxy.kubeconfig"}
hostnameOverride: ${NODE}
mode: nftables
clusterCIDR: ${POD_SUBNET}
# Pods on one bridge reach each other's Services through the node.
masqueradeAll: true
# Zero: leave the host's conntrack sysctls alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# kill_cgroup DIR: every process in DIR and below, until none is left.
kill_cgroup() {
  local dir=$1 i pids
  for ((i = 0; i < 50; i++)); do
    pids=$(find "${dir}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    [[ -z "${pids}" ]] && return 0
    # shellcheck disable=SC2086
    kill -9 ${pids} 2>/dev/null || true
    sleep 0.2
  done
  log "processes left in ${dir}: ${pids}"
}

down() {
  [[ $(id -u) == 0 ]] || die "needs root"
  trap - ERR
  set +e
  local p
  # Out of the cgroup about to be emptied (up's failure path runs from it).
  [[ -d /sys/fs/cgroup/pids/claiim-cluster ]] && echo $$ >/sys/fs/cgroup/pids/cgroup.procs
  # Politely first, so containerd and the kubelet do not leave half state.
  for p in kubelet kube-proxy kube-scheduler kube-controller-manager kube-apiserver; do
    [[ -f "${STATE}/pids/${p}" ]] && kill "$(cat "${STATE}/pids/${p}")" 2>/dev/null
  done
  # Pods, shims and components: by cgroup, so none escapes by daemonizing.
  for p in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/pids/claiim-cluster; do
    [[ -d "${p}" ]] && kill_cgroup "${p}"
  done
  for p in "${STATE}"/pids/*; do [[ -f "${p}" ]] && kill -9 "$(cat "${p}")" 2>/dev/null; done
  local n d
  for n in "${CGROUP_NAMES[@]}"; do
    for d in /sys/fs/cgroup/*/"${n}"; do
      [[ -d "${d}" ]] && find "${d}" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  ip netns del "${NETNS}" 2>/dev/null
  # Pods' namespaces: containerd 1.6 names them under /run/netns whatever
  # its state dir; their mounts died with the mount namespace, the names not.
  if [[ -f "${STATE}/before" ]]; then
    for n in $(ip netns list 2>/dev/null | awk '{print $1}'); do
      sed -n '/^# netns/,/^# mounts/p' "${STATE}/before" | grep -qxF "${n}" || ip netns del "${n}" 2>/dev/null
    done
  fi
  # ip netns add bind-mounts /run/netns on first use; undo it if it was ours.
  if [[ -f "${STATE}/before" ]] && ! grep -qx "/run/netns .*" "${STATE}/before" && [[ -z "$(ip netns list)" ]]; then
    umount /run/netns 2>/dev/null
    grep -qxF /run/netns "${STATE}/before" || rmdir /run/netns 2>/dev/null
  fi
  if [[ -f "${STATE}/sysctls" ]]; then
    while IFS= read -r kv; do sysctl -qw "${kv}"; done <"${STATE}/sysctls"
  fi
  if [[ -f "${STATE}/before" ]]; then
    for d in "${FIXED_DIRS[@]}"; do
      grep -qxF "${d}" "${STATE}/before" || rm -rf "${d}"
    done
  fi
  # Anything the kubelet mounted under STATE from the host's namespace.
  awk -v s="${STATE}" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "${STATE}"
  set -e
  log "down: host restored"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  exec)
    shift
    running || die "no cluster runs: make cluster-up"
    # Whatever CMD starts (a test's PostgreSQL) ends with the cluster at the latest.
    echo $$ >/sys/fs/cgroup/pids/claiim-cluster/cgroup.procs
    KUBECONFIG=${STATE}/admin.kubeconfig PATH=${K8S_BIN}:${PATH} in_ns "$@"
    ;;
  snapshot) snapshot ;;
  *) die "usage: $0 up|down|exec CMD...|snapshot" ;;
esac
