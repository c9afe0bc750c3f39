// Package cluster runs CLAIIM in a real one-node cluster (hack/cluster.sh):
// the chart installed from charts/claiim with the image built by make image,
// the gate Deployment the manager creates running as pods, an agent pod
// calling the gate Service, and the faults an SRE meets: a leader pod
// deleted, the gate rolled and killed and upgraded under load, the webhook
// certificate renewed under two replicas. Then the kustomize install.
//
// It runs only from make e2e-cluster, which starts the cluster and runs
// this package inside the cluster's network namespace with
// CLAIIM_CLUSTER_STATE set; elsewhere it skips.
package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	. "github.com/onsi/gomega"

	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

const (
	ns      = "claiim-system"
	release = "claiim"
	nodeIP  = "10.200.0.2" // hack/cluster.sh's NODE_IP: PostgreSQL listens there for the pods
	// The images make cluster-assets imports into the node's containerd.
	image      = "docker.io/claiim/claiim"
	agentImage = "docker.io/claiim/e2e-agent:dev"
	admin      = "admin@claiim.io"
	peer       = "peer@claiim.io"
)

type cluster struct {
	t     *testing.T
	root  string
	state string
	bin   string // kubectl
	helm  string
	pg    *pgtest.Server
	db    *pgxpool.Pool
	pgURL string // the owner's URL, as the pods reach it
}

func TestCluster(t *testing.T) {
	state := os.Getenv("CLAIIM_CLUSTER_STATE")
	if state == "" {
		t.Skip("runs from make e2e-cluster (a real one-node cluster; needs root)")
	}
	c := &cluster{t: t, root: testenv.RepoRoot(), state: state, helm: os.Getenv("HELM")}
	c.bin = filepath.Join(c.root, "bin", "k8s", os.Getenv("K8S_VERSION"), "kubectl")
	for _, f := range []string{filepath.Join(state, "admin.kubeconfig"), c.bin, c.helm} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v: make e2e-cluster provides it", err)
		}
	}
	c.startPostgreSQL()

	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"helm install: two managers and the gate they create, running", c.helmInstall},
		{"the seed's steps 3-11 through the real apiserver", c.seed},
		{"an agent pod calls the gate Service with both credentials", c.agentPod},
		{"the console shows an auditor the agent's decisions, with their own token", c.console},
		{"pods run non-root on a read-only root filesystem", c.podSecurity},
		{"the gate's NetworkPolicy, as the manager writes it", c.networkPolicy},
		{"manager leader pod deleted: the other replica leads, admissions go on", c.leaderDeleted},
		{"webhook certificate renewed: both replicas serve the new one", c.certRenewed},
		{"gate rolled under load", c.gateRolled},
		{"gate pod killed under load", c.gatePodKilled},
		{"helm upgrade to a changed value under load", c.helmUpgrade},
		{"kustomize install, after helm uninstall", c.kustomizeInstall},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			c.dump()
			return
		}
	}
}

// startPostgreSQL runs Chron's database on the node's address, for pods,
// with an owner that may create roles (the chart's migration Job needs one).
func (c *cluster) startPostgreSQL() {
	ctx := context.Background()
	pg, err := pgtest.StartWith(ctx, pgtest.Options{
		Settings: []string{"listen_addresses=127.0.0.1," + nodeIP},
		HBA:      []string{"host all all 10.244.0.0/16 scram-sha-256"},
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(pg.Stop)
	c.pg = pg
	super, err := pgxpool.New(ctx, pg.URL)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(super.Close)
	for _, q := range []string{
		"CREATE ROLE claiim_owner LOGIN CREATEROLE PASSWORD 'owner-e2e'",
		"CREATE DATABASE claiim OWNER claiim_owner",
	} {
		if _, err := super.Exec(ctx, q); err != nil {
			c.t.Fatalf("%s: %v", q, err)
		}
	}
	c.pgURL = fmt.Sprintf("postgres://claiim_owner:owner-e2e@%s:%d/claiim?sslmode=disable", nodeIP, pg.Port())
	// The test reads Chron as the superuser: what it checks is what is stored.
	dbURL := strings.Replace(pg.URL, "/postgres?", "/claiim?", 1)
	if c.db, err = pgxpool.New(ctx, dbURL); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(c.db.Close)
}

// run runs a command and returns its stdout; stderr joins the error.
func (c *cluster) run(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

func (c *cluster) kubeconfig(user string) string {
	if user == "" {
		return filepath.Join(c.state, "admin.kubeconfig")
	}
	return filepath.Join(c.state, "users", user+".kubeconfig")
}

// kubectl runs kubectl as the cluster admin and fails the test on error.
func (c *cluster) kubectl(args ...string) string {
	c.t.Helper()
	out, err := c.as("", args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// as runs kubectl as one of the people (admin@claiim.io, peer@claiim.io),
// whose client certificates hack/cluster.sh issued; "" is the cluster admin.
func (c *cluster) as(user string, args ...string) (string, error) {
	return c.run(nil, c.bin, append([]string{"--kubeconfig", c.kubeconfig(user)}, args...)...)
}

func (c *cluster) helmRun(args ...string) (string, error) {
	return c.run([]string{"KUBECONFIG=" + c.kubeconfig("")}, c.helm, args...)
}

// secretValue reads one key of a Secret.
func (c *cluster) secretValue(namespace, name, key string) string {
	c.t.Helper()
	v := c.kubectl("-n", namespace, "get", "secret", name, "-o", "jsonpath={.data."+key+"}")
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) == 0 {
		c.t.Fatalf("secret %s/%s has no %s", namespace, name, key)
	}
	return string(b)
}

// eventually is gomega's Eventually with the cluster's patience.
func eventually(t *testing.T, f func(g Gomega), within time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(f).WithTimeout(within).WithPolling(time.Second).Should(Succeed())
}

// dump prints what an engineer needs when a step failed.
func (c *cluster) dump() {
	for _, args := range [][]string{
		{"get", "pods", "-A", "-o", "wide"},
		{"-n", ns, "get", "events", "--sort-by=.lastTimestamp"},
		{"-n", ns, "logs", "-l", "app.kubernetes.io/component=manager", "--tail=40", "--all-containers", "--prefix"},
		{"-n", ns, "logs", "-l", "app.kubernetes.io/component=gate", "--tail=40", "--prefix"},
	} {
		out, err := c.as("", args...)
		c.t.Logf("kubectl %s:\n%s%v", strings.Join(args, " "), out, err)
	}
}
