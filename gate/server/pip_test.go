package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/test/testenv"
)

// seedOptionB is step 10's Option B of the seed, byte for byte: it asks
// the gate at http://localhost:8181/v.
const seedOptionB = `import asyncio, os
from claiim import CLAIIMClient

async def main():
    client = CLAIIMClient(
        gate_url="http://localhost:8181/v",
        agent_token=os.environ["AGENT_TOKEN"],
        skill_version_id=os.environ["SKILL_VERSION_ID"],
    )
    await client.init()

    result = await client.validate("deploy:staging", {"target": "eu-staging-1"})
    print(f"deploy:staging -> {result.outcome}")

    try:
        result = await client.validate("deploy:production", {"target": "eu-prod-1"})
        print(f"deploy:production -> {result.outcome}")
    except Exception as e:
        print(f"deploy:production -> DENIED: {e}")

asyncio.run(main())
`

// installed checks what the package gives beyond the snippet: the
// identity's seed fields, Denied.decision_id, and fail-closed.
const installed = `import asyncio, os
from claiim import CLAIIMClient, Denied

async def main():
    client = CLAIIMClient(os.environ["GATE_URL"], os.environ["AGENT_TOKEN"], os.environ["SKILL_VERSION_ID"])
    identity = await client.init()
    print(identity.skill_display_name, identity.agent_email, identity["system_prompt"], sep="|")
    try:
        await client.validate("deploy:production", {"target": "eu-prod-1"})
    except Denied as e:
        print("decision_id", e.decision_id)
    try:
        await CLAIIMClient("http://127.0.0.1:1/v", "x", "y").init()
    except Denied as e:
        print("unreachable", e.reason, e.decision_id)

asyncio.run(main())
`

var _ = Describe("The Python package", func() {
	It("installs with pip into a fresh venv, offline, and runs the seed's Option B verbatim", func() {
		py, err := exec.LookPath("python3")
		if err != nil {
			Skip("python3 is not installed")
		}
		// Not accepted yet: the rehearsal agent below waits for it.
		w := newWorld(worldOpts{accepted: false, prompt: prompt})
		pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-production-deploys")}, Spec: claiimv1.PolicySpec{
			Org: claiimv1.OrgName(w.org), DisplayName: "No production deploys",
			Rules: []claiimv1.PolicyRule{{Name: "deny-prod", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}},
		}}
		Expect(k8s.Create(ctx, pol)).To(Succeed())
		Eventually(func(g Gomega) { // the gate knows the policy (asked of its snapshot, as if the agent were active)
			snap := src.Snapshot()
			a, ok := snap.Agent(w.ns, w.agent.Name)
			g.Expect(ok).To(BeTrue())
			active := *a
			active.Active = true
			d := decide.Decide(snap, decide.Request{Agent: &active, Action: "deploy:production", SkillVersionID: w.svID})
			g.Expect(d.Reason).To(Equal(decide.ReasonPolicyDeny))
		}).Should(Succeed())

		venv := GinkgoT().TempDir()
		run := func(env []string, name string, args ...string) string {
			GinkgoHelper()
			cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(cctx, name, args...)
			cmd.Dir = GinkgoT().TempDir() // not the package's directory: what is imported is what pip installed
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "%s %v:\n%s", name, args, out)
			return string(out)
		}
		env := cleanEnv()
		if out, err := exec.CommandContext(ctx, py, "-c", "import ensurepip, venv").CombinedOutput(); err != nil {
			Fail("python3 cannot make a venv with pip (Debian: python3-venv); hack/ensure-deps.sh installs it: " + string(out))
		}
		run(env, py, "-m", "venv", venv)
		// --no-index: no package index is reachable here, and none is needed
		// (the build backend is in the tree, standard library only).
		pkg := filepath.Join(testenv.RepoRoot(), "gate", "python")
		before := tree(pkg)
		run(env, filepath.Join(venv, "bin", "pip"), "install", "--no-index", "--disable-pip-version-check", pkg)
		Expect(tree(pkg)).To(Equal(before), "the build writes nothing into the source tree")

		By("hack/rehearsal_agent.py waits for the anchor's acceptance (init: AGENT_INACTIVE), then prints the seed's output")
		python := filepath.Join(venv, "bin", "python")
		rehearsal := exec.CommandContext(ctx, python, filepath.Join(testenv.RepoRoot(), "hack", "rehearsal_agent.py"))
		rehearsal.Env = append(env, "AGENT_TOKEN="+w.token, "SKILL_VERSION_ID="+w.svID, "CLAIIM_GATE_URL="+gateURL+"/v")
		var rehearsed strings.Builder
		rehearsal.Stdout, rehearsal.Stderr = &rehearsed, &rehearsed
		Expect(rehearsal.Start()).To(Succeed())
		Eventually(func(g Gomega) {
			rows, _, err := chron.List(ctx, pool, chron.Filter{Agent: w.agent.Name, Namespace: w.ns, Kind: string(chron.KindInit), Reason: decide.ReasonAgentInactive})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(rows).NotTo(BeEmpty())
		}).Should(Succeed())
		w.update(func(a *claiimv1.Agent) { a.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: anchor} })
		Expect(rehearsal.Wait()).To(Succeed(), rehearsed.String())
		Expect(rehearsed.String()).To(Equal(`Action 1: deploy to staging-eu-1
  Requesting CLAIIM approval for  deploy:staging
  ALLOW -- gate cleared (OWN_AIORG)
  Deployed  (simulated)

Action 2: deploy to prod-eu-1
  Requesting CLAIIM approval for  deploy:production
  DENY -- policy deny
  Production deployment blocked. No action taken.
`))

		By("the seed's Option B, verbatim")
		// The snippet asks localhost:8181; this gate listens elsewhere, so
		// the request reaches it as urllib sends any request through an
		// HTTP proxy named by http_proxy: the snippet runs unchanged.
		agentEnv := append(env, "AGENT_TOKEN="+w.token, "SKILL_VERSION_ID="+w.svID, "http_proxy="+gateURL)
		out := run(agentEnv, python, "-c", seedOptionB)
		Expect(out).To(Equal("deploy:staging -> ALLOW\n" +
			"deploy:production -> DENIED: POLICY_DENY: policy deny: " + pol.Name + "/deny-prod (v1)\n"))
		Expect(out).NotTo(ContainSubstring(w.token))

		out = run(append(env, "AGENT_TOKEN="+w.token, "SKILL_VERSION_ID="+w.svID, "GATE_URL="+gateURL+"/v"),
			python, "-c", installed)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(3), out)
		Expect(lines[0]).To(Equal("Deploy Bot|deploy-bot@yourcompany.com|" + prompt))
		id, ok := strings.CutPrefix(lines[1], "decision_id ")
		Expect(ok).To(BeTrue(), out)
		Expect(w.rows()).To(ContainElement(And(HaveField("ID", id), HaveField("Reason", "POLICY_DENY"))))
		Expect(lines[2]).To(Equal("unreachable UNREACHABLE None"))
	})
})

// cleanEnv is the test's environment without proxies (which would send
// the gate's requests elsewhere) and without a PYTHONPATH (which would
// import the package from the tree, not from the install), and without
// bytecode written into the tree by the build backend.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "pythonpath", "pip_index_url", "pip_find_links":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PYTHONDONTWRITEBYTECODE=1")
}

// tree lists the files under dir.
func tree(dir string) []string {
	GinkgoHelper()
	var out []string
	Expect(filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		out = append(out, path)
		return err
	})).To(Succeed())
	return out
}
