package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// TestManagerStartsWithoutPostgreSQL runs the real claiim binary's manager
// against an envtest apiserver while PostgreSQL is stopped: it serves
// (readyz ok, webhooks up) and refuses a PIM request, which must be
// recorded, with a message that names Chron. Once PostgreSQL starts it
// still refuses, saying the schema is not at its version and how to
// migrate: the manager, connected as its writer role, never migrates.
// After `claiim chron migrate` it admits the request without a restart.
func TestManagerStartsWithoutPostgreSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL")
	}
	if err := testenv.Available(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	ownerURL, err := pg.CreateDatabase(ctx, "claiim") // empty: migrated below, by `claiim chron migrate`
	if err != nil {
		t.Fatal(err)
	}
	const managerRole = "claiim_manager"
	dbURL := strings.Replace(ownerURL, "postgres://postgres@", "postgres://"+managerRole+"@", 1)
	if err := pg.Control(ctx, "stop"); err != nil {
		t.Fatal(err)
	}

	env := testenv.New()
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook")}, LocalServingHost: "127.0.0.1"}
	cfg, err := testenv.Start(env)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	root, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.ApplyFile(ctx, root, filepath.Join(testenv.RepoRoot(), "config", "rbac", "user_roles.yaml")); err != nil {
		t.Fatal(err)
	}
	// The manager's namespace: its Chron keys and stream Leases live there.
	if err := root.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "claiim-system"}}); err != nil {
		t.Fatal(err)
	}
	const managerUser, alice = "claiim-test-manager", "alice@claiim.io"
	if err := root.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice-claiim-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "claiim-admin"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: alice}}}); err != nil {
		t.Fatal(err)
	}
	mu, err := env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := mu.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	au, err := env.AddUser(envtest.User{Name: alice, Groups: []string{"system:authenticated"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	asAlice, err := client.New(au.Config(), client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(dir, "claiim")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(testenv.RepoRoot(), "cmd", "claiim")).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	probe, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	wio := env.WebhookInstallOptions
	cmd := exec.Command(bin, "manager", "--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probe),
		"--webhook-host="+wio.LocalServingHost, "--webhook-port="+strconv.Itoa(wio.LocalServingPort), "--webhook-cert-dir="+wio.LocalServingCertDir,
		"--manager-username="+managerUser,
		// The configurations as envtest installed them, kept in place.
		"--webhook-url=https://"+net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))+"/",
		"--webhook-mutating-configuration=mutating-webhook-configuration", "--webhook-validating-configuration=validating-webhook-configuration")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "kubeconfig"), "DATABASE_URL="+dbURL, "POD_NAME=manager-0")
	var log testenv.Output
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the manager has exited, with werr its end:
	// a channel both the polls and the cleanup may watch.
	exited := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		t.Logf("manager exited: %v", werr)
		if t.Failed() {
			t.Logf("manager log:\n%s", log.String())
		}
	}()
	// until polls f until it returns "", failing with its last answer
	// after a generous deadline (a hang detector, not a threshold), or at
	// once if the manager exits.
	until := func(what string, f func() string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			last := f()
			if last == "" {
				return
			}
			select {
			case <-exited:
				t.Fatalf("the manager exited (%v) while waiting for %s; last: %s", werr, what, last)
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; last: %s", what, last)
			}
		}
	}

	until("readyz ok with PostgreSQL down", func() string {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", probe))
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		return ""
	})
	n := 0
	request := func() error {
		n++
		return asAlice.Create(ctx, &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pim-%d", n)},
			Spec: claiimv1.PIMRequestSpec{Reason: "onboarding while Chron is down"}})
	}
	until("a PIM request refused for want of Chron", func() string {
		err := request()
		if err == nil {
			return "admitted"
		}
		if !strings.Contains(err.Error(), "could not be recorded in Chron") || !strings.Contains(err.Error(), "cannot read Chron's schema version") {
			return err.Error()
		}
		return ""
	})
	until("the manager's log to say why, again after a retry", func() string {
		if strings.Count(log.String(), "Chron is not ready") < 2 {
			return "not yet"
		}
		return ""
	})

	if err := pg.Control(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// The role exists (made by a DBA, say) but Chron is not migrated.
	if _, err := pool.Exec(ctx, "CREATE ROLE "+managerRole+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Chron's schema is at version 0, this manager needs %d: run `claiim chron migrate`", chron.RequiredVersion())
	until("a PIM request refused until Chron is migrated", func() string {
		err := request()
		if err == nil {
			return "admitted"
		}
		if !strings.Contains(err.Error(), want) {
			return err.Error()
		}
		return ""
	})
	var out bytes.Buffer
	if err := RunChron([]string{"migrate", "--database-url", ownerURL, "--manager-role", managerRole}, &out); err != nil {
		t.Fatalf("chron migrate: %v\n%s", err, out.String())
	}
	until("a PIM request admitted once PostgreSQL is up", func() string {
		if err := request(); err != nil {
			return err.Error()
		}
		return ""
	})
	var rows int
	// The manager's stream is the Lease it holds: manager/<index>.
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM chron_records WHERE kind = 'pim.requested' AND stream LIKE 'manager/%'`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d pim.requested rows in the manager's stream (%v), want 1", rows, err)
	}
}
