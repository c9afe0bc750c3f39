package upgrade

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chronlease"
	"github.com/claiim/claiim-operator/gate/token"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The load: the agent's workload asking at a steady rate throughout.
const (
	loadRate    = 40 // calls/s
	loadWorkers = 4
	firstGate   = "claiim-gate-first" // the first release's gate: its replica, and its stream gate/<replica>
	// The new components publish their streams' signed checkpoints every
	// second (10 s in production), so verify has them to check against.
	checkpointEvery = "--chron-checkpoint-interval=1s"
)

// TestUpgradeUnderLoad installs the first release, runs the agent's
// workload against it, and upgrades everything in the order `helm
// upgrade` does while the load goes on: the pre-upgrade migration Job,
// the CRDs and RBAC, the manager's Deployment, then the gate's (which the
// new manager rolls). Then: no ALLOW without its row, every call
// answered, every row of both formats verifies, and the token was
// rotated with its notice.
func TestUpgradeUnderLoad(t *testing.T) {
	c := install(t)
	start := time.Now()

	// (1) The first release, as installed: its manager and gate each
	// migrate Chron with the one owner URL the chart gave both.
	oldManager := c.startManager("first", oldBinary, c.ownerURL)
	oldGate := c.startGate(firstGate, oldBinary, c.ownerURL)
	old := c.seed()
	old.label = "old"
	l := startLoad(oldGate.base, old, loadRate, loadWorkers)
	t.Cleanup(func() { l.finish() })
	fromFirst := func(s string) bool { return s == "gate/"+firstGate }
	fromSecond := func(s string) bool { return strings.HasPrefix(s, "gate/") && !fromFirst(s) }
	eventually(t, time.Minute, "the first release allows the agent", l.allowedSince(time.Time{}, "old", fromFirst))
	t.Logf("first release installed, seeded and answering in %s", time.Since(start).Round(time.Millisecond))

	// (2a) The pre-upgrade hook Job: `claiim chron migrate` as the owner,
	// with the login roles. The first release's gate keeps answering on
	// the migrated schema (its rows take the default, format 1).
	urls := c.roleURLs()
	c.migrate(urls)
	migrated := time.Now()
	eventually(t, time.Minute, "the first release's gate allows on the migrated schema", l.allowedSince(migrated, "old", fromFirst))

	// (2b) The CRDs (Helm leaves a chart's crds/ alone on upgrade: they
	// are applied first, docs/install.md) and the chart's RBAC. The
	// webhook configurations are the same in both releases; the new
	// manager keeps them as built.
	if _, err := envtest.InstallCRDs(c.env.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("applying the new CRDs: %v", err)
	}
	c.applyRBAC(testenv.RepoRoot())
	c.gateChronRole()

	// (2c) The manager's Deployment rolls: the old pod ends, the new one
	// runs with the manager's writer role, never the owner.
	oldManager.stop(t)
	c.startManager("second", newBinary, urls["manager"], checkpointEvery,
		// Out of the cluster, its webhooks are the configurations envtest installed.
		"--webhook-url=https://"+c.webhookAddr+"/",
		"--webhook-mutating-configuration=mutating-webhook-configuration", "--webhook-validating-configuration=validating-webhook-configuration")

	// (2d) It rotates the unsigned token. The workload restarts once the
	// agent reports the new token (the Warning event tells its owner to)
	// and reads it from the Secret; until then its old token is refused.
	fresh := c.readSecret(func(sec *corev1.Secret) error {
		if sec.Annotations[claiimv1.AnnotationSecretAttestation] == "" {
			return fmt.Errorf("still the first release's unsigned Secret")
		}
		a := &claiimv1.Agent{}
		if err := c.root.Get(c.ctx, client.ObjectKey{Namespace: agentNS, Name: agentName}, a); err != nil {
			return err
		}
		if a.Status.Token == nil || a.Status.Token.Hash != token.Hash(string(sec.Data[claiimv1.SecretKeyAgentToken])) {
			return fmt.Errorf("the agent's status does not report the Secret's new token yet")
		}
		return nil
	})
	fresh.label = "new"
	l.restart(fresh)
	restarted := time.Now()
	eventually(t, time.Minute, "the first release's gate allows the new token", l.allowedSince(restarted, "new", fromFirst))

	// (2e) The gate's Deployment rolls: a new gate with the gate's writer
	// role is ready, the Service moves to it, and once no call is on its
	// way to the old pod (the endpoint's removal has propagated: the first
	// release's gate has no drain of its own) that pod gets SIGTERM.
	newGate := c.startGate("claiim-gate-second", newBinary, urls["gate"], "--shutdown-drain=2s", checkpointEvery)
	l.route(newGate.base)
	rolled := time.Now()
	eventually(t, time.Minute, "no call in flight to the first release's gate", l.drained(oldGate.base))
	oldGate.stop(t)
	eventually(t, time.Minute, "the new gate allows the new token", l.allowedSince(rolled, "new", fromSecond))
	eventually(t, time.Minute, "the load goes on against the new gate", func() error {
		if n := count(l.snapshot(), func(c call) bool { return c.allow && fromSecond(c.stream) }); n < 2*loadRate {
			return fmt.Errorf("%d ALLOWs from the new gate so far", n)
		}
		return nil
	})
	calls := l.finish()
	t.Logf("upgraded under load in %s", time.Since(migrated).Round(time.Millisecond))

	// (3) What the upgrade promises.
	c.summarize(calls)
	c.everyAllowHasItsRow(calls)
	c.tokenRotatedWithNotice(old, fresh, newGate)
	c.bothFormatsVerify(urls["reader"], migrated)
	c.sessionsFromBeforeElevateNobody()
}

// sessionsFromBeforeElevateNobody: the first release's admission stamped
// approvals without a signature, so its sessions count for nothing under
// the new one (docs/security.md); a session approved now does.
func (c *cluster) sessionsFromBeforeElevateNobody() {
	c.t.Helper()
	pol := func() *claiimv1.Policy {
		return &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "after-upgrade"}, Spec: claiimv1.PolicySpec{Org: "engineering",
			Rules: []claiimv1.PolicyRule{{Name: "no-prod", Actions: []claiimv1.ActionPattern{"deploy:production"}, Effect: claiimv1.PolicyEffectDeny}}}}
	}
	err := c.as[adminUser].Create(c.ctx, pol())
	if err == nil || !strings.Contains(err.Error(), "PIM") {
		c.t.Errorf("admin's change under the first release's session: %v; want a refusal naming PIM", err)
	} else {
		c.t.Logf("a session from before the upgrade: %v", err)
	}
	c.elevate()
	if err := c.as[adminUser].Create(c.ctx, pol()); err != nil {
		c.t.Errorf("admin's change under a session approved after the upgrade: %v", err)
	}
}

// migrate runs `claiim chron migrate` as the chart's hook Job does.
func (c *cluster) migrate(urls map[string]string) {
	c.t.Helper()
	cmd := exec.Command(newBinary, "chron", "migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+c.ownerURL, "CLAIIM_GATE_DATABASE_URL="+urls["gate"],
		"CLAIIM_MANAGER_DATABASE_URL="+urls["manager"], "CLAIIM_READER_DATABASE_URL="+urls["reader"])
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("claiim chron migrate: %v\n%s", err, out)
	}
	c.t.Logf("claiim chron migrate:\n%s", out)
}

// gateChronRole is what the new manager gives the gate it runs
// (--manage-gate): its stream Leases and its key Secret.
func (c *cluster) gateChronRole() {
	c.t.Helper()
	for _, o := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "claiim-gate-chron"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{chronlease.GateKeysSecret}, Verbs: []string{"get"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "claiim-gate-chron"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "claiim-gate-chron"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: gateUser}}},
	} {
		if err := c.root.Create(c.ctx, o); err != nil {
			c.t.Fatal(err)
		}
	}
}

// summarize logs the load's answers and fails on a call no gate answered.
func (c *cluster) summarize(calls []call) {
	c.t.Helper()
	byAnswer := map[string]int{}
	var unanswered []call
	for _, x := range calls {
		switch {
		case x.allow:
			byAnswer[fmt.Sprintf("%s: ALLOW, %s token", c.gates[x.gate], x.creds)]++
		case x.status != 0:
			byAnswer[fmt.Sprintf("%s: DENY %s (%d), %s token", c.gates[x.gate], x.reason, x.status, x.creds)]++
		default:
			unanswered = append(unanswered, x)
		}
	}
	keys := make([]string, 0, len(byAnswer))
	for k := range byAnswer {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-60s %d\n", k, byAnswer[k])
	}
	c.t.Logf("%d calls:\n%s", len(calls), b.String())
	for i, x := range unanswered {
		if i == 5 {
			break
		}
		c.t.Errorf("no gate answered a call at %s (hang: %t): %s", x.start.Format(time.StampMilli), x.hang, x.err)
	}
	if len(unanswered) > 0 {
		c.t.Errorf("%d of %d calls got no answer during the upgrade", len(unanswered), len(calls))
	}
}

// everyAllowHasItsRow: each ALLOW the workload saw is a committed
// decision row under its decision id. A missing row is never retried: an
// ALLOW is answered after its commit.
func (c *cluster) everyAllowHasItsRow(calls []call) {
	c.t.Helper()
	var ids []string
	for _, x := range calls {
		if x.allow {
			ids = append(ids, x.decisionID)
		}
	}
	var found int
	if err := c.owner.QueryRow(c.ctx, `SELECT count(*) FROM chron_records
		WHERE id = ANY($1) AND kind = 'decision' AND outcome = 'ALLOW' AND agent_namespace = $2 AND agent_name = $3`,
		ids, agentNS, agentName).Scan(&found); err != nil {
		c.t.Fatal(err)
	}
	if found != len(ids) {
		c.t.Errorf("%d of %d ALLOWs have no committed Chron row", len(ids)-found, len(ids))
	}
	c.t.Logf("every ALLOW has its row: %d of %d", found, len(ids))
}

// tokenRotatedWithNotice: the first release's token no longer
// authenticates and says so to its holder as a DENY, the new one does;
// Chron and the agent's events carry the notice.
func (c *cluster) tokenRotatedWithNotice(old, fresh creds, g *gate) {
	c.t.Helper()
	oldID, _ := token.ID(old.token)
	newID, _ := token.ID(fresh.token)
	h := httpClient()
	if x := ask(g.base, old, h); x.allow || x.status != 401 || x.reason == "" {
		c.t.Errorf("the first release's token at the new gate: allow=%t status=%d reason=%q %s; want a 401 DENY with a reason", x.allow, x.status, x.reason, x.err)
	} else {
		c.t.Logf("the first release's token at the new gate: DENY %s (%d)", x.reason, x.status)
	}
	if x := ask(g.base, fresh, h); !x.allow {
		c.t.Errorf("the rotated token at the new gate: status=%d reason=%q %s", x.status, x.reason, x.err)
	}
	var msg string
	if err := c.owner.QueryRow(c.ctx, `SELECT message FROM chron_records
		WHERE kind = 'token.rotated' AND reason = 'TOKEN_ROTATED_ON_UPGRADE' AND agent_namespace = $1 AND agent_name = $2`,
		agentNS, agentName).Scan(&msg); err != nil {
		c.t.Errorf("Chron's token.rotated row of the upgrade: %v", err)
	} else if !strings.Contains(msg, oldID) || !strings.Contains(msg, newID) || !strings.Contains(msg, "Restart the agent's workloads") {
		c.t.Errorf("Chron's token.rotated row names neither both tokens nor what to do: %q", msg)
	}
	eventually(c.t, 30*time.Second, "the Warning event on the agent", func() error {
		evs := &corev1.EventList{}
		if err := c.root.List(c.ctx, evs, client.InNamespace(agentNS)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == agentName && e.Type == corev1.EventTypeWarning && e.Reason == "TokenRotatedOnUpgrade" {
				c.t.Logf("the notice, as `kubectl describe agent` shows it: %s", e.Message)
				return nil
			}
		}
		return fmt.Errorf("none among %d events", len(evs.Items))
	})
}

// bothFormatsVerify: the first release's v1 rows, including those its
// gate wrote after the migration, and the new keyed v2 rows, all verify
// with `claiim chron verify` as an auditor runs it (the reader role; the
// checkpoints, public keys and chain keys from the Kubernetes API).
func (c *cluster) bothFormatsVerify(readerURL string, migrated time.Time) {
	c.t.Helper()
	var v1After, v2 int
	if err := c.owner.QueryRow(c.ctx, `SELECT count(*) FILTER (WHERE format = 1 AND stream = $1 AND time >= $2),
		count(*) FILTER (WHERE format = 2) FROM chron_records`, "gate/"+firstGate, migrated).Scan(&v1After, &v2); err != nil {
		c.t.Fatal(err)
	}
	if v1After == 0 || v2 == 0 {
		c.t.Errorf("want format-1 rows the first release's gate wrote after the migration and format-2 rows: %d and %d", v1After, v2)
	}
	// Both new streams' checkpoints, published by now or soon.
	eventually(c.t, 30*time.Second, "a signed checkpoint of the new gate's and the manager's streams", func() error {
		cps, problems, err := chronlease.ReadCheckpoints(c.ctx, c.root, systemNS)
		if err != nil || len(problems) > 0 {
			return fmt.Errorf("reading the checkpoints: %w (problems: %v)", err, problems)
		}
		scopes := map[string]bool{}
		for _, cp := range cps {
			if cp.Seq > 0 {
				scopes[strings.SplitN(cp.Stream, "/", 2)[0]] = true
			}
		}
		if !scopes["gate"] || !scopes["manager"] {
			return fmt.Errorf("checkpoints of %v so far", scopes)
		}
		return nil
	})
	cmd := exec.Command(newBinary, "chron", "verify", "--namespace="+systemNS, "--keys-from-secrets")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+readerURL, "KUBECONFIG="+c.kubeconfig[rootUser])
	out, err := cmd.CombinedOutput()
	var rows, streams, checkpoints int
	if _, serr := fmt.Sscanf(string(out), "checked %d rows in %d streams against %d signed checkpoints", &rows, &streams, &checkpoints); err != nil || serr != nil ||
		!strings.Contains(string(out), "OK:") || checkpoints < 2 {
		c.t.Errorf("claiim chron verify (want OK against the 2 new streams' checkpoints): %v\n%s", err, out)
	}
	c.t.Logf("claiim chron verify (%d v1 rows written after the migration, %d v2 rows):\n%s", v1After, v2, out)
}

func count(calls []call, f func(call) bool) int {
	n := 0
	for _, c := range calls {
		if f(c) {
			n++
		}
	}
	return n
}
