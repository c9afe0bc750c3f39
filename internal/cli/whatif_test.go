package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/whatif"
	"github.com/claiim/claiim-operator/test/testenv"
)

// TestWhatIfCommand runs `claiim whatif` against a real apiserver and a
// real Chron: objects admitted and signed with a manager key published
// as the manager publishes it, decision rows written by Chron's writer,
// and changes whose flips are known.
func TestWhatIfCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL")
	}
	if err := testenv.Available(); err != nil {
		t.Skip(err)
	}
	env := testenv.Setup(t, testenv.Options{Chron: true})
	ctx, c := env.Context(), env.Client
	signer := attest.NewSigner(attest.NewKey())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// create stores o and stamps it as admission would have, over the
	// object as stored (with the CRD's defaults).
	create := func(o client.Object) {
		t.Helper()
		must(c.Create(ctx, o))
		st, err := attest.NewStamp(signer, o, o, time.Now())
		must(err)
		ann := o.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[claiimv1.AnnotationAdmitted] = st
		o.SetAnnotations(ann)
		must(c.Update(ctx, o))
	}
	must(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "claiim-system"}}))
	must(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}))
	must(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "claiim-system", Name: "claiim-attestation-keys"},
		Data: signer.Public().ConfigMapData()}))
	create(&claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "payments"}, Spec: claiimv1.AIOrgSpec{DisplayName: "Payments"}})
	skill := &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: "payer"}, Spec: claiimv1.SkillSpec{Org: "payments",
		Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "bot@example.com", AllowedActions: []claiimv1.ActionPattern{"payments:send", "payments:refund"}}}}}
	create(skill)
	agent := &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Name: "bot", Namespace: "team",
		Annotations: map[string]string{claiimv1.AnnotationAnchorAccepted: "alice@example.com"}},
		Spec: claiimv1.AgentSpec{Org: "payments", AccountabilityAnchor: "alice@example.com", SkillRef: claiimv1.SkillRef{Name: "payer", Version: 1}}}
	create(agent)
	agent.Status = claiimv1.AgentStatus{Phase: claiimv1.AgentActive, ObservedGeneration: agent.Generation,
		Token: &claiimv1.AgentToken{ID: "tok1", Hash: "sha256:00"}}
	agent.Status.Attestation = signer.Sign(attest.Agent(agent))
	must(c.Status().Update(ctx, agent))

	svID := claiimv1.SkillVersionID("payer", 1, skill.Spec.Versions[0].Digest())
	w, err := chron.NewWriter(ctx, env.Chron, chron.WriterOptions{Stream: "gate/whatif-test"})
	must(err)
	defer func() { _ = w.Close() }()
	ids := map[string]string{}
	for _, r := range []struct {
		name, action string
		ctx          map[string]any
	}{
		{"small", "payments:send", map[string]any{"amount": 10}},
		{"big", "payments:send", map[string]any{"amount": 5000}},
		{"masked", "payments:send", map[string]any{"amount": 20, "api_token": "s3cr3t"}},
		{"refund", "payments:refund", nil},
	} {
		row, err := w.Write(ctx, &chron.Record{Kind: chron.KindDecision, AgentName: "bot", AgentNamespace: "team", AgentUID: string(agent.UID),
			Org: "payments", Action: r.action, Context: r.ctx, Outcome: chron.OutcomeAllow, Reason: "OWN_AIORG", SkillVersionID: svID})
		must(err)
		ids[r.name] = row.ID
	}

	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := env.Config
	must(clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"envtest": {Server: cfg.Host, CertificateAuthorityData: cfg.CAData}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"admin": {ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}},
		Contexts:       map[string]*clientcmdapi.Context{"envtest": {Cluster: "envtest", AuthInfo: "admin", Namespace: "team"}},
		CurrentContext: "envtest",
	}, kubeconfig))
	run := func(policy string, extra ...string) whatif.Report {
		t.Helper()
		file := filepath.Join(dir, "change.yaml")
		must(os.WriteFile(file, []byte(policy), 0o600))
		var out bytes.Buffer
		args := append([]string{"-f", file, "--kubeconfig", kubeconfig, "--database-url", env.Chron.Config().ConnString(), "-o", "json"}, extra...)
		must(RunWhatIf(args, &out))
		var rep whatif.Report
		must(json.Unmarshal(out.Bytes(), &rep))
		return rep
	}
	const deny = `apiVersion: claiim.io/v1alpha1
kind: Policy
metadata:
  name: no-payments
spec:
  org: %s
  rules:
  - name: send
    actions: ["payments:send"]
    effect: Deny
`
	// Every send flips; the masked row decides too: no rule reads the context.
	rep := run(strings.Replace(deny, "%s", "payments", 1))
	if rep.Read != 4 || rep.Changed != 3 || rep.Unchanged != 1 || len(rep.Flips) != 1 || rep.Flips[0].Count != 3 ||
		rep.Flips[0].From != (whatif.Answer{Outcome: "ALLOW", Reason: "OWN_AIORG"}) ||
		rep.Flips[0].To != (whatif.Answer{Outcome: "DENY", Reason: "POLICY_DENY"}) || rep.Flips[0].Agent != "team/bot" {
		t.Fatalf("deny payments:send: %+v", rep)
	}
	if rep.Window != "the last 24h" || len(rep.Notes) != 0 {
		t.Errorf("the published keys were not used: %v", rep.Notes)
	}
	// A condition: only the big payment flips, the masked one is undecidable.
	rep = run(strings.Replace(deny, "%s", "payments", 1) + "    condition: context.amount > 1000\n")
	if rep.Changed != 1 || rep.Flips[0].Examples[0] != ids["big"] || rep.Undecidable != 1 || rep.Undecided[0].Examples[0] != ids["masked"] {
		t.Fatalf("conditional deny: %+v", rep)
	}
	// A policy of an org with no agents touches no request.
	rep = run(strings.Replace(deny, "%s", "hr", 1))
	if rep.Read != 0 || rep.Changed != 0 || len(rep.Flips) != 0 {
		t.Fatalf("no-op: %+v", rep)
	}
	// Deleting a stored policy: the sends flip back.
	create(&claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "no-sends"}, Spec: claiimv1.PolicySpec{Org: "payments",
		Rules: []claiimv1.PolicyRule{{Name: "send", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"payments:send"}}}}})
	var del bytes.Buffer
	must(RunWhatIf([]string{"--delete", "Policy/no-sends", "--kubeconfig", kubeconfig, "--database-url", env.Chron.Config().ConnString(), "-o", "json"}, &del))
	rep = whatif.Report{}
	must(json.Unmarshal(del.Bytes(), &rep))
	if rep.Change[0] != "delete Policy/no-sends" || rep.Changed != 3 || rep.Flips[0].To != (whatif.Answer{Outcome: "ALLOW", Reason: "OWN_AIORG"}) {
		t.Fatalf("delete: %+v", rep)
	}
	must(c.Delete(ctx, &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "no-sends"}}))

	// Text output and --limit.
	file := filepath.Join(dir, "change.yaml")
	must(os.WriteFile(file, []byte(strings.Replace(deny, "%s", "payments", 1)), 0o600))
	var out bytes.Buffer
	must(RunWhatIf([]string{"-f", file, "--kubeconfig", kubeconfig, "--database-url", env.Chron.Config().ConnString(), "--limit", "2"}, &out))
	for _, want := range []string{"What-if: create Policy/no-payments", "sampled the newest 2 of more than 2 requests", "team/bot", "ALLOW OWN_AIORG", "DENY POLICY_DENY"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestWhatIfDeletionRefs(t *testing.T) {
	for ref, want := range map[string]string{
		"Policy/no-prod": "Policy/no-prod", "skill/deploy": "Skill/deploy", "Agent/team/bot": "Agent/team/bot",
		"AIOrg/hr": "AIOrg/hr", "CrossOrgGrant/g": "CrossOrgGrant/g",
	} {
		o, err := deletion(ref)
		if err != nil || whatif.Ref(o) != want {
			t.Errorf("--delete %s: %v, %v", ref, o, err)
		}
	}
	for _, bad := range []string{"Agent/bot", "Policy", "Policy/", "Secret/x", "Policy/a/b"} {
		if _, err := deletion(bad); err == nil {
			t.Errorf("--delete %s was accepted", bad)
		}
	}
}
