package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The seed's people and the components' identities in the local control
// plane.
const (
	devAdmin   = "admin@claiim.io"
	devPeer    = "peer@claiim.io"
	devManager = "system:serviceaccount:claiim-system:claiim-manager"
	devGate    = "system:serviceaccount:claiim-system:claiim-gate"
)

const devUsage = `Usage:
  claiim dev up   [--dir .dev] [--gate-port 8181]   start the local control plane (idempotent)
  claiim dev down [--dir .dev]                      stop all of it
Needs KUBEBUILDER_ASSETS (kube-apiserver, etcd, kubectl; 'make dev' builds them) and
PostgreSQL server binaries, or DATABASE_URL pointing at your own database.
`

type devFlags struct {
	dir      string
	gatePort int
	dbURL    string
}

func runDev(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, devUsage)
		return errors.New("missing dev command")
	}
	fs := flag.NewFlagSet("dev "+args[0], flag.ContinueOnError)
	var f devFlags
	fs.StringVar(&f.dir, "dir", ".dev", "where state, kubeconfigs, logs and the env file live")
	fs.IntVar(&f.gatePort, "gate-port", 8181, "port of the gate on localhost")
	fs.StringVar(&f.dbURL, "database-url", os.Getenv("DATABASE_URL"), "use this PostgreSQL for Chron instead of a throwaway one")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	f.dir = dir
	switch args[0] {
	case "up":
		return devUp(f)
	case "down":
		return devDown(f)
	case "serve":
		return devServe(f)
	}
	fmt.Fprint(os.Stderr, devUsage)
	return fmt.Errorf("unknown dev command %q", args[0])
}

func (f devFlags) path(name string) string { return filepath.Join(f.dir, name) }

func (f devFlags) gateURL() string { return fmt.Sprintf("http://localhost:%d", f.gatePort) }

// runningPID returns the supervisor's pid if it is alive.
func (f devFlags) runningPID() int {
	b, err := os.ReadFile(f.path("pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

func devUp(f devFlags) error {
	if pid := f.runningPID(); pid != 0 {
		fmt.Printf("The local control plane is already running (pid %d).\n", pid)
		printDevSummary(f)
		return nil
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); assets == "" || err != nil {
			return fmt.Errorf("no %s in KUBEBUILDER_ASSETS=%q: run 'make dev', which builds kube-apiserver, etcd and kubectl once and sets it", b, assets)
		}
	}
	if f.dbURL == "" {
		if _, err := pgtest.BinDir(); err != nil {
			return fmt.Errorf("%w (the seed's \"your database is yours\": DATABASE_URL=postgres://... make dev)", err)
		}
	}
	if err := portFree(f.gatePort); err != nil {
		return err
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return err
	}
	_ = os.Remove(f.path("env"))
	logf, err := os.Create(f.path("dev.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "dev", "serve", "--dir", f.dir, "--gate-port", strconv.Itoa(f.gatePort), "--database-url", f.dbURL)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this command
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the local control plane: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fmt.Println("Starting the local control plane: etcd, kube-apiserver, PostgreSQL, the manager with its webhooks, the gate...")
	deadline := time.After(3 * time.Minute)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("the local control plane stopped while starting (%v); see %s:\n%s", err, f.path("dev.log"), tail(f.path("dev.log"), 30))
		case <-deadline:
			return fmt.Errorf("the local control plane did not become ready in 3 minutes; see the logs in %s:\n%s", f.dir, tail(f.path("dev.log"), 30))
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := os.Stat(f.path("env")); err != nil {
			continue
		}
		if resp, err := http.Get(f.gateURL() + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				printDevSummary(f)
				return nil
			}
		}
	}
}

func printDevSummary(f devFlags) {
	rel := f.dir
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, f.dir); err == nil && !strings.HasPrefix(r, "..") {
			rel = r
		}
	}
	fmt.Printf(`
CLAIIM is running.
  gate:          %[1]s  (curl %[1]s/health)
  kubeconfigs:   %[2]s/kubeconfig-admin (admin@claiim.io), %[2]s/kubeconfig-peer (peer@claiim.io)
  logs:          %[2]s/*.log

Next:
  source %[2]s/env                 # KUBECONFIG (admin), CLAIIM_PEER_KUBECONFIG, DATABASE_URL, CLAIIM_GATE_URL, kubectl on PATH
  kubectl get aiorg,skill,pol,agent,pim
  make rehearsal                  # the seed's onboarding, steps 3-11
  make dev-down                   # stop everything
`, f.gateURL(), rel)
}

func devDown(f devFlags) error {
	pid := f.runningPID()
	if pid == 0 {
		fmt.Println("The local control plane is not running.")
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping pid %d: %w", pid, err)
	}
	for i := 0; i < 600; i++ {
		if syscall.Kill(pid, 0) != nil {
			fmt.Println("The local control plane is stopped.")
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return fmt.Errorf("the local control plane (pid %d) did not stop in 60s and was killed; see %s", pid, f.path("dev.log"))
}

// devServe is the supervisor: it runs everything and stops everything.
func devServe(f devFlags) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := os.WriteFile(f.path("pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(f.path("pid"))
	defer os.Remove(f.path("env"))
	logf := func(format string, a ...any) {
		fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format(time.TimeOnly)}, a...)...)
	}

	env := testenv.New()
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook")}, LocalServingHost: "127.0.0.1",
	}
	logf("starting etcd and kube-apiserver (RBAC on)")
	cfg, err := testenv.Start(env)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping kube-apiserver and etcd")
		if err := env.Stop(); err != nil {
			logf("stopping kube-apiserver and etcd: %v", err)
		}
	}()
	root, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	for _, file := range []string{"role.yaml", "user_roles.yaml", "gate_role.yaml"} {
		if err := applyFile(ctx, root, filepath.Join(testenv.RepoRoot(), "config", "rbac", file)); err != nil {
			return err
		}
	}
	bindings := map[string][]string{
		devManager: {"claiim-manager"}, devGate: {"claiim-gate"},
		devAdmin: {"claiim-admin"}, devPeer: {"claiim-admin", "claiim-approver"},
	}
	for user, roles := range bindings {
		for _, role := range roles {
			if err := root.Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: role + "-" + strings.NewReplacer("@", "-at-", ":", "-", ".", "-").Replace(user)},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
			}); err != nil {
				return fmt.Errorf("binding %s to %s: %w", user, role, err)
			}
		}
	}
	// The seed shows the provisioner the agent's token once: here admin
	// may read the token Secrets in the default namespace.
	if err := root.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "claiim-token-reader", Namespace: "default"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}); err != nil {
		return err
	}
	if err := root.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "claiim-token-reader", Namespace: "default"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "claiim-token-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: devAdmin}}}); err != nil {
		return err
	}
	kubeconfigs := map[string]envtest.User{
		"kubeconfig-admin":   {Name: devAdmin, Groups: []string{"system:authenticated"}},
		"kubeconfig-peer":    {Name: devPeer, Groups: []string{"system:authenticated"}},
		"kubeconfig-manager": {Name: devManager, Groups: []string{"system:serviceaccounts", "system:authenticated"}},
		"kubeconfig-gate":    {Name: devGate, Groups: []string{"system:serviceaccounts", "system:authenticated"}},
		"kubeconfig-root":    {Name: "dev-root", Groups: []string{"system:masters"}},
	}
	for file, u := range kubeconfigs {
		au, err := env.AddUser(u, nil)
		if err != nil {
			return err
		}
		b, err := au.KubeConfig()
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.path(file), b, 0o600); err != nil {
			return err
		}
	}

	dbURL := f.dbURL
	if dbURL == "" {
		logf("starting a throwaway PostgreSQL")
		pg, err := pgtest.Start(ctx)
		if err != nil {
			return err
		}
		defer func() {
			logf("stopping PostgreSQL")
			pg.Stop()
		}()
		if dbURL, err = pg.CreateDatabase(ctx, "claiim"); err != nil {
			return err
		}
	}

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	wio := env.WebhookInstallOptions
	children := []*exec.Cmd{}
	defer func() {
		for _, c := range children {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = c.Process.Kill()
			}
		}
	}()
	exited := make(chan string, 2)
	start := func(name, kubeconfig string, args ...string) error {
		lf, err := os.Create(f.path(name + ".log"))
		if err != nil {
			return err
		}
		c := exec.Command(exe, args...)
		c.Env = append(os.Environ(), "KUBECONFIG="+f.path(kubeconfig), "DATABASE_URL="+dbURL)
		c.Stdout, c.Stderr = lf, lf
		logf("starting the %s (log: %s)", name, lf.Name())
		if err := c.Start(); err != nil {
			return err
		}
		children = append(children, c)
		go func() { _ = c.Wait(); exited <- name }()
		return nil
	}
	if err := start("manager", "kubeconfig-manager", "manager", "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--webhook-host="+wio.LocalServingHost, "--webhook-port="+strconv.Itoa(wio.LocalServingPort), "--webhook-cert-dir="+wio.LocalServingCertDir,
		"--manager-username="+devManager, "--gate-url="+f.gateURL()+"/v"); err != nil {
		return err
	}
	if err := start("gate", "kubeconfig-gate", "gate", fmt.Sprintf("--listen=127.0.0.1:%d", f.gatePort), "--metrics-bind-address=0", "--replica=dev"); err != nil {
		return err
	}

	envFile := fmt.Sprintf(`# Written by 'claiim dev up'. Source it: . %[1]s/env
export KUBECONFIG=%[1]s/kubeconfig-admin
export CLAIIM_ADMIN_KUBECONFIG=%[1]s/kubeconfig-admin
export CLAIIM_PEER_KUBECONFIG=%[1]s/kubeconfig-peer
export CLAIIM_ROOT_KUBECONFIG=%[1]s/kubeconfig-root
export DATABASE_URL=%[2]q
export CLAIIM_GATE_URL=%[3]s/v
export PATH=%[4]q:"$PATH"
`, f.dir, dbURL, f.gateURL(), os.Getenv("KUBEBUILDER_ASSETS")+":"+filepath.Dir(exe))
	if err := os.WriteFile(f.path("env"), []byte(envFile), 0o600); err != nil {
		return err
	}
	logf("ready")
	select {
	case <-ctx.Done():
		logf("stopping")
		return nil
	case name := <-exited:
		return fmt.Errorf("the %s exited; see %s", name, f.path(name+".log"))
	}
}

func applyFile(ctx context.Context, c client.Client, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			return nil
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("applying %s: %w", path, err)
		}
	}
}

// portFree says which port is taken, and by what when ss can tell.
func portFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err == nil {
		return l.Close()
	}
	by := ""
	if out, err := exec.Command("ss", "-H", "-ltnp", fmt.Sprintf("sport = :%d", port)).Output(); err == nil && len(out) > 0 {
		by = ": " + strings.TrimSpace(string(out))
	}
	return fmt.Errorf("port %d (the gate's) is taken%s; stop that process or use --gate-port", port, by)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
