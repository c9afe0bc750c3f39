#!/usr/bin/env bash
# Installs what `make demo` and `make test` need beyond Go, when missing:
# PostgreSQL's server binaries (unless DATABASE_URL points at your own
# database) and python3 with venv and pip (the seed's agent program and
# the Python client's install test). Debian packages; needs
# root. Idempotent. With the argument `cluster`, also what the one-node
# cluster of make e2e-cluster needs (docs/e2e.md); with `browser`, the
# Chromium the console's browser test drives (docs/console.md).
set -euo pipefail

need=()
args=" $* "
if [[ "$args" == *" browser "* ]]; then
  command -v chromium >/dev/null || need+=(chromium)
fi
if [[ "$args" == *" cluster "* ]]; then
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  command -v nft >/dev/null || need+=(nftables)
  command -v iptables >/dev/null || need+=(iptables)
  command -v conntrack >/dev/null || need+=(conntrack)
  command -v openssl >/dev/null || need+=(openssl)
  [[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
fi
if [[ -z "${DATABASE_URL:-}" ]] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  need+=(postgresql)
fi
command -v python3 >/dev/null || need+=(python3)
# The Python client's install test makes a venv and pip-installs the
# package into it (gate/server/pip_test.go); Debian splits both out.
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux) # make bench pins load and server apart
[[ ${#need[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "Missing: ${need[*]}. Install them (e.g. 'sudo apt-get install ${need[*]}')," >&2
  echo "or set DATABASE_URL to your own PostgreSQL instead of installing it." >&2
  exit 1
fi
echo "Installing ${need[*]} (Debian packages)..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
