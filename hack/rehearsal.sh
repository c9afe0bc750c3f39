#!/usr/bin/env bash
# The seed's onboarding, steps 3-11, against the local control plane
# (`make dev`): admin requests elevation, peer approves, admin declares the
# org, skill, policy and agent, an agent program asks the gate twice, and
# Chron shows both decisions. Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dev_dir=${CLAIIM_DEV_DIR:-.dev}
if [[ ! -f "$dev_dir/env" ]]; then
  echo "rehearsal: no local control plane in $dev_dir; start it with 'make dev'" >&2
  exit 1
fi
# shellcheck disable=SC1091
. "$dev_dir/env"
admin() { kubectl --kubeconfig "$CLAIIM_ADMIN_KUBECONFIG" "$@"; }
peer() { kubectl --kubeconfig "$CLAIIM_PEER_KUBECONFIG" "$@"; }
say() { printf '\n== %s\n' "$*"; }

say "Step 3-4: admin@claiim.io requests elevation; peer@claiim.io approves"
pim=$(admin create -f config/samples/claiim_v1alpha1_pimrequest.yaml -o name)
echo "$pim requested by admin@claiim.io"
peer annotate "$pim" claiim.io/approve="Approved: initial onboarding" >/dev/null
admin wait --for=jsonpath='{.status.phase}'=Active "$pim" --timeout=60s >/dev/null
admin get "$pim"

say "Step 5-9: admin creates the AI Org, Skill, Policy and provisions the agent"
admin apply -k config/samples
admin wait --for=condition=Ready aiorg/engineering skill/deploy-bot policy/no-production-deploys --timeout=60s >/dev/null
admin wait --for=condition=Ready agent/prod-deploy-bot -n default --timeout=60s >/dev/null
admin get aiorg,skill,pol,agent -A

# The token is shown once: read it from the agent's Secret.
secret=prod-deploy-bot-claiim-token
AGENT_TOKEN=$(admin get secret "$secret" -n default -o jsonpath='{.data.AGENT_TOKEN}' | base64 -d)
SKILL_VERSION_ID=$(admin get secret "$secret" -n default -o jsonpath='{.data.SKILL_VERSION_ID}' | base64 -d)
export AGENT_TOKEN SKILL_VERSION_ID
echo "Skill Version ID: $SKILL_VERSION_ID"

say "Step 10: test the gate"
PYTHONPATH=gate/python python3 hack/rehearsal_agent.py

say "Step 11: the Chron proof"
claiim chron list --agent default/prod-deploy-bot --kind decision --limit 2
