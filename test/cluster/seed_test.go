package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// helmInstall installs the chart as a platform engineer would, with the
// image built here and the test's PostgreSQL as Chron's database.
func (c *cluster) helmInstall(t *testing.T) {
	c.kubectl("create", "namespace", ns)
	c.kubectl("-n", ns, "create", "secret", "generic", "claiim-database", "--from-literal=DATABASE_URL="+c.pgURL)
	people := fmt.Sprintf(`[{"kind":"User","name":%q},{"kind":"User","name":%q}]`, admin, peer)
	out, err := c.helmRun("install", release, "charts/claiim", "-n", ns, "--wait", "--timeout", "5m",
		"--set", "image.repository="+image, "--set", "image.tag=dev", "--set", "image.pullPolicy=Never",
		"--set", "database.host="+nodeIP, "--set", "database.port="+strconv.Itoa(c.pg.Port()),
		"--set", "database.sslmode=disable",
		"--set-json", "rbac.bindings.admins="+people, "--set-json", "rbac.bindings.approvers="+people)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out)
	c.kubectl("-n", ns, "rollout", "status", "deploy/claiim-manager", "--timeout=3m")
	// The manager creates the gate; its pods run the same image.
	eventually(t, func(g Gomega) {
		out, err := c.as("", "-n", ns, "get", "deploy/claiim-gate", "-o", "jsonpath={.status.readyReplicas}")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(Equal("2"))
	}, 3*time.Minute)
	// Sized by the chart's defaults: requests (not BestEffort, the first
	// evicted) and a memory limit, whose 90% is the gate's GOMEMLIMIT.
	gatePods := []string{"-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=claiim,app.kubernetes.io/component=gate"}
	q := strings.Fields(c.kubectl(append(gatePods, "-o", "jsonpath={.items[*].status.qosClass}")...))
	if len(q) == 0 || slices.ContainsFunc(q, func(class string) bool { return class != "Burstable" }) {
		t.Fatalf("gate pods' QoS classes %q, want Burstable for every one", q)
	}
	if e := c.kubectl(append(gatePods, "-o", `jsonpath={.items[0].spec.containers[0].env[?(@.name=="GOMEMLIMIT")].value}`)...); e != "483183819" {
		t.Fatalf("the gate's GOMEMLIMIT %q, want 90%% of 512Mi (483183819)", e)
	}
	if n := c.kubectl("-n", ns, "get", "deploy/claiim-manager", "-o", "jsonpath={.status.readyReplicas}"); n != "2" {
		t.Fatalf("want 2 ready manager replicas, have %q", n)
	}
}

// seed runs the onboarding guide's steps 3-9 as its two people, through
// the admission webhooks behind the chart's Service.
func (c *cluster) seed(t *testing.T) {
	c.elevate(t)
	if out, err := c.as(admin, "apply", "-k", "config/samples"); err != nil {
		t.Fatal(err)
	} else {
		t.Log(out)
	}
	c.kubectl("wait", "--for=condition=Ready", "aiorg/engineering", "skill/deploy-bot", "policy/no-production-deploys", "--timeout=2m")
	c.kubectl("-n", "default", "wait", "--for=condition=Ready", "agent/prod-deploy-bot", "--timeout=2m")
	// The agent's pods authenticate with their ServiceAccount too.
	c.kubectl("-n", "default", "create", "serviceaccount", "prod-deploy-bot")
	if _, err := c.as(admin, "-n", "default", "patch", "agent/prod-deploy-bot", "--type=merge",
		"-p", `{"spec":{"serviceAccountName":"prod-deploy-bot"}}`); err != nil {
		t.Fatal(err)
	}
	// Without a session, admission refuses, and says why.
	if _, err := c.as(peer, "-n", "default", "patch", "agent/prod-deploy-bot", "--type=merge",
		"-p", `{"spec":{"displayName":"renamed"}}`); err == nil || !strings.Contains(err.Error(), "PIM") {
		t.Fatalf("a change without a PIM session: want a refusal naming PIM, got %v", err)
	}
}

// elevate: admin@claiim.io requests a session, peer@claiim.io approves it
// (seed steps 3-4); returns when it is Active.
func (c *cluster) elevate(t *testing.T) {
	t.Helper()
	// Right after an install or a rollout the webhook Service may not
	// route yet (the endpoints and kube-proxy's rules follow the pods'
	// readiness): the apiserver fails closed until it does.
	var name string
	eventually(t, func(g Gomega) {
		out, err := c.as(admin, "create", "-f", "config/samples/claiim_v1alpha1_pimrequest.yaml", "-o", "name")
		if err != nil && !strings.Contains(out+err.Error(), "failed calling webhook") {
			StopTrying("creating the PIM request").Wrap(err).Now()
		}
		g.Expect(err).NotTo(HaveOccurred(), "the PIM webhook is not reachable yet")
		name = strings.TrimSpace(out)
	}, time.Minute)
	// Nobody approves their own request.
	if _, err := c.as(admin, "annotate", name, "claiim.io/approve=self"); err == nil {
		t.Fatal("admin approved their own PIM request")
	}
	if _, err := c.as(peer, "annotate", name, "claiim.io/approve=Approved: e2e-cluster"); err != nil {
		t.Fatal(err)
	}
	c.kubectl("wait", "--for=jsonpath={.status.phase}=Active", name, "--timeout=2m")
}

// agentLine is what test/cluster/agent prints per call.
type agentLine struct {
	Credential, Action, Outcome, Reason, Error string
	ChronID                                    string `json:"chron_id"`
}

// agentPod runs test/cluster/agent as a pod with the agent's token Secret
// and a projected ServiceAccount token; both get the seed's answers, over
// the gate's TLS, and every answer is a Chron row (seed steps 10-11).
func (c *cluster) agentPod(t *testing.T) {
	pod := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"prod-deploy-bot","namespace":"default"},
"spec":{"serviceAccountName":"prod-deploy-bot","restartPolicy":"Never",
 "securityContext":{"runAsNonRoot":true,"runAsUser":65532},
 "containers":[{"name":"agent","image":%q,"imagePullPolicy":"Never",
  "envFrom":[{"secretRef":{"name":"prod-deploy-bot-claiim-token"}}],
  "securityContext":{"readOnlyRootFilesystem":true,"allowPrivilegeEscalation":false},
  "volumeMounts":[{"name":"claiim","mountPath":"/var/run/secrets/claiim","readOnly":true}]}],
 "volumes":[{"name":"claiim","projected":{"sources":[{"serviceAccountToken":{"audience":"claiim-gate","expirationSeconds":3600,"path":"token"}}]}}]}}`, agentImage)
	c.apply(t, pod)
	c.kubectl("-n", "default", "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/prod-deploy-bot", "--timeout=2m")
	logs := c.kubectl("-n", "default", "logs", "pod/prod-deploy-bot")
	t.Log(logs)
	want := map[string]string{"deploy:staging": "ALLOW", "deploy:production": "DENY"}
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l agentLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("agent printed %q: %v", sc.Text(), err)
		}
		if l.Error != "" || l.Outcome != want[l.Action] || l.ChronID == "" {
			t.Errorf("%s %s: want %s with a Chron row, got %+v", l.Credential, l.Action, want[l.Action], l)
			continue
		}
		c.expectRow(t, l.ChronID, l.Outcome)
		seen[l.Credential]++
	}
	if seen["agent-token"] != 2 || seen["serviceaccount"] != 2 {
		t.Fatalf("want both actions answered for both credentials, got %v", seen)
	}
}

// expectRow checks the Chron row "stream/seq" is stored with the outcome.
func (c *cluster) expectRow(t *testing.T, chronID, outcome string) {
	t.Helper()
	i := strings.LastIndex(chronID, "/")
	if i < 0 {
		t.Fatalf("chron id %q is not stream/seq", chronID)
	}
	var got string
	err := c.db.QueryRow(context.Background(), "SELECT outcome FROM chron_records WHERE stream = $1 AND seq = $2",
		chronID[:i], chronID[i+1:]).Scan(&got)
	if err != nil || !strings.EqualFold(got, outcome) {
		t.Errorf("Chron row %s: want outcome %s, got %q (%v)", chronID, outcome, got, err)
	}
}

// apply creates or updates an object from JSON, as the cluster admin.
func (c *cluster) apply(t *testing.T, obj string) {
	t.Helper()
	cmd := exec.Command(c.bin, "--kubeconfig", c.kubeconfig(""), "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(obj)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}
